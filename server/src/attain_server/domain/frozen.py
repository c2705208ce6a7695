"""Quicker construction for the frozen dataclasses that every transaction makes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TypeVar, cast

T = TypeVar("T")


def quick_init(cls: type[T]) -> type[T]:
    """Gives a frozen, slotted dataclass an ``__init__`` that sets each slot through its own
    descriptor. The generated one calls ``object.__setattr__`` once per field to get past the
    frozen ``__setattr__``, which is most of the cost of making a Line or a Transaction
    (1.1 µs against 0.67 for four fields). The signature, the defaults and ``__post_init__``
    stay as they were; a class this does not cover is refused rather than changed."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} is not a frozen dataclass with slots")
    env: dict[str, object] = {}
    signature = []
    body = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not f.init or f.kw_only or f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name}: only plain fields are covered")
        if f.default is dataclasses.MISSING:
            signature.append(f.name)
        else:
            env[f"default_{f.name}"] = f.default
            signature.append(f"{f.name}=default_{f.name}")
        env[f"set_{f.name}"] = cls.__dict__[f.name].__set__
        body.append(f"set_{f.name}(self, {f.name})")
    if hasattr(cls, "__post_init__"):
        body.append("self.__post_init__()")
    source = f"def __init__(self, {', '.join(signature)}):\n    " + "\n    ".join(body) + "\n"
    exec(source, env)
    init = cast(Callable[..., None], env["__init__"])
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    setattr(cls, "__init__", init)  # noqa: B010 - mypy refuses a method assignment
    return cls
