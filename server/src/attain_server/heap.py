"""Giving freed memory back to the operating system: glibc's malloc_trim, behind one function.

glibc keeps the pages of freed small allocations in its arenas for reuse, so a burst that
came and went (a thousand streams, each with a page of rows waiting for its reader) leaves
the process's resident size at its peak for good. ``malloc_trim`` returns the free pages.
Elsewhere (musl, macOS) there is nothing to call and this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from functools import cache


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Returns the allocator's free pages to the system; True when any were released.

    ctypes lets go of the GIL during the call, so it may run in a worker thread.
    """
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
