"""The private SQLAlchemy attributes the driver runner reaches (store/_runner/library.py)
are still there: this fails loudly on the SQLAlchemy release that drops one."""

from __future__ import annotations

import inspect

import orjson
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection

from attain_server.store._runner.library import json_codec
from attain_server.store.engine import Database


def test_the_asyncpg_adapter_keeps_its_transaction_and_error_translation() -> None:
    adapter = AsyncAdapt_asyncpg_connection
    assert "_transaction" in inspect.getsource(adapter.__init__), "adapter._transaction"
    assert inspect.iscoroutinefunction(adapter._start_transaction), "adapter._start_transaction"
    assert callable(adapter._handle_exception), "adapter._handle_exception"


def test_the_dialect_keeps_the_engines_json_codec() -> None:
    dialect = Database("sqlite+aiosqlite:///:memory:").engine.dialect
    dumps, loads = json_codec(dialect)
    assert dumps([1, "a"]) == orjson.dumps([1, "a"]).decode(), "dialect._json_serializer"
    assert loads is orjson.loads, "dialect._json_deserializer"
