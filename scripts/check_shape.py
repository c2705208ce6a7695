#!/usr/bin/env python3
"""Reports code past the shape limits of issue #19 in server/src and worker/src.

Prints every function longer than 80 lines, every module longer than 600 lines, every
`exec(` (code built from strings), generated code and migrations aside, and every question
of which database runs asked above the store; exits 1 if any.
Run it as `.venv/bin/python scripts/check_shape.py` from anywhere in the repository.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("server/src", "worker/src")
# Generated protobuf code and alembic revisions are not written by hand.
SKIPPED = ("attain/v1/", "migrations/versions/")
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 600
EXEC = "exec("
# Above the store (use cases, servicers, the worker) no code asks which database it runs on:
# the store decides what differs (decision 0030).
ABOVE_STORE = ("attain_server/application/", "attain_server/api/", "worker/src/")
DATABASE_CHECKS = ("is_sqlite", ".dialect", "with_for_update(")

Function = ast.FunctionDef | ast.AsyncFunctionDef


def sources() -> Iterator[Path]:
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if not any(part in path.as_posix() for part in SKIPPED):
                yield path


def _qualified(tree: ast.Module) -> Iterator[tuple[str, Function]]:
    """Every function with its dotted name within the module (Class.method, outer.inner)."""
    stack: list[tuple[str, ast.AST]] = [("", tree)]
    while stack:
        prefix, node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    yield name, child
                stack.append((f"{name}.", child))
            else:
                stack.append((prefix, child))


def problems(path: Path) -> Iterator[str]:
    text = path.read_text(encoding="utf-8")
    where = path.relative_to(ROOT).as_posix()
    lines = text.splitlines()
    if len(lines) > MAX_MODULE_LINES:
        yield f"{where}: module of {len(lines)} lines (at most {MAX_MODULE_LINES})"
    for name, function in _qualified(ast.parse(text, filename=where)):
        length = (function.end_lineno or function.lineno) - function.lineno + 1
        if length > MAX_FUNCTION_LINES:
            yield (
                f"{where}:{function.lineno}: {name} has {length} lines "
                f"(at most {MAX_FUNCTION_LINES})"
            )
    above_store = any(part in where for part in ABOVE_STORE)
    for number, line in enumerate(lines, start=1):
        if EXEC in line:
            yield f"{where}:{number}: exec( {line.strip()}"
        if above_store and any(check in line for check in DATABASE_CHECKS):
            yield f"{where}:{number}: database check above the store: {line.strip()}"


def main() -> int:
    found = [problem for path in sources() for problem in problems(path)]
    for problem in found:
        print(problem)
    if found:
        print(f"{len(found)} shape problem(s)", file=sys.stderr)
        return 1
    print(
        "shape: no function over 80 lines, no module over 600, no exec(, "
        "no database check above the store",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
