"""Transition shim: the driver runner's public names, now in `store._runner`."""

from ._runner import (
    Conn,
    Unit,
    driver_closed,
    engine_of,
    executemany,
    fetch,
    fetch_in,
    in_list,
    orm,
    runner_for,
    update_rows,
)

__all__ = [
    "Conn",
    "Unit",
    "driver_closed",
    "engine_of",
    "executemany",
    "fetch",
    "fetch_in",
    "in_list",
    "orm",
    "runner_for",
    "update_rows",
]
