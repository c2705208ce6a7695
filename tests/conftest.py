"""Shared fixtures: real databases (SQLite file, PostgreSQL per run), real servers on free ports."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import grpc
import pytest
from sqlalchemy.engine import make_url

from attain.v1 import progress_pb2_grpc, rewards_pb2_grpc, targets_pb2_grpc
from attain_server.app import App
from attain_server.application.brands import create_brand
from attain_server.config import Settings
from attain_server.store.engine import Database
from attain_service.server import Running, build_server
from sshd_server import sshd  # noqa: F401  (the fixture, for tests/worker)
from support import SECRETS_KEY, auth, start_server

# Where the PostgreSQL tests create their throwaway database.
PG_ADMIN_URL = os.environ.get("ATTAIN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
# CI sets this so that a PostgreSQL that does not answer fails the run instead of skipping.
PG_REQUIRED = os.environ.get("ATTAIN_REQUIRE_PG") == "1"


class FakeClock:
    """A clock tests move by hand; defaults to the real time."""

    def __init__(self) -> None:
        self.fixed: datetime | None = None

    def __call__(self) -> datetime:
        return self.fixed or datetime.now(UTC)

    def set(self, when: datetime) -> None:
        assert when.tzinfo is not None
        self.fixed = when


async def _pg_connect() -> asyncpg.Connection:
    url = make_url(PG_ADMIN_URL)
    return await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database or "postgres",
        timeout=5,
    )


@asynccontextmanager
async def pg_database(prefix: str) -> AsyncIterator[str]:
    """A fresh PostgreSQL database named ``prefix_<pid>_<random>``, dropped afterwards; skips
    the test (or fails it, in CI) when PostgreSQL does not answer."""
    try:
        conn = await _pg_connect()
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        if PG_REQUIRED:
            pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} does not answer: {exc}")
        pytest.skip(f"PostgreSQL tests skipped: nothing answers at {PG_ADMIN_URL} ({exc})")
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    await conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(PG_ADMIN_URL).set(drivername="postgresql+asyncpg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


@pytest.fixture(scope="session")
async def pg_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database for this test run, dropped at the end."""
    async with pg_database("attain_test") as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("sqlite") / "attain.db"
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))


@dataclass
class Brand:
    code: str
    admin_key: str
    time_zone: str

    @property
    def admin(self) -> tuple[tuple[str, str], ...]:
        return auth(self.admin_key)


@dataclass
class Api:
    """A real server on a free port, a real channel to it, and stubs."""

    running: Running
    channel: grpc.aio.Channel
    clock: FakeClock

    @property
    def app(self) -> App:
        return self.running.app

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.running.port}"

    @property
    def targets(self) -> targets_pb2_grpc.TargetServiceAsyncStub:
        return targets_pb2_grpc.TargetServiceStub(self.channel)

    @property
    def progress(self) -> progress_pb2_grpc.ProgressServiceAsyncStub:
        return progress_pb2_grpc.ProgressServiceStub(self.channel)

    @property
    def rewards(self) -> rewards_pb2_grpc.RewardServiceAsyncStub:
        return rewards_pb2_grpc.RewardServiceStub(self.channel)

    async def new_brand(self, time_zone: str = "Asia/Jakarta") -> Brand:
        """A brand of its own per test, so tests never see each other's rows."""
        code, secret = await _create_brand(self.app.db, time_zone)
        return Brand(code, secret, time_zone)


async def _create_brand(db: Database, time_zone: str) -> tuple[str, str]:
    """A brand with a new random code; returns the code and its first admin key."""
    code = f"B{uuid.uuid4().hex[:10].upper()}"
    _, _, secret = await create_brand(db=db, code=code, time_zone=time_zone, now=datetime.now(UTC))
    return code, secret


async def start_api(database_url: str, clock: FakeClock) -> tuple[Running, grpc.aio.Channel]:
    settings = Settings(
        listen="127.0.0.1:0",
        database_url=database_url,
        key_cache_seconds=0.0,
        secrets_key=SECRETS_KEY,
        drain_seconds=0.1,
    )
    running = await build_server(App.create(settings, clock=clock))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    await channel.channel_ready()
    return running, channel


@pytest.fixture(scope="session")
async def api(database_url: str) -> AsyncIterator[Api]:
    clock = FakeClock()
    running, channel = await start_api(database_url, clock)
    try:
        yield Api(running, channel, clock)
    finally:
        await channel.close()
        await running.stop(grace=1)


@dataclass
class CliServer:
    """A real `attain-server serve` process (SQLite in a temp folder) for the CLI's tests,
    which are synchronous: the CLI runs its own event loop per command."""

    address: str
    data_dir: Path

    def new_brand(self, time_zone: str = "Asia/Jakarta") -> str:
        """A new brand; returns its first admin key."""

        async def create() -> str:
            app = App.create(Settings(data_dir=self.data_dir))
            try:
                _, secret = await _create_brand(app.db, time_zone)
                return secret
            finally:
                await app.db.dispose()

        return asyncio.run(create())


@pytest.fixture(scope="session")
def cli_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliServer]:
    data_dir = tmp_path_factory.mktemp("cli-server")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTAIN_")}
    env.update(ATTAIN_KEY_CACHE_SECONDS="0")
    proc, address = start_server(
        data_dir / "server.log", "--no-worker", "--data-dir", str(data_dir), env=env
    )
    try:
        yield CliServer(address, data_dir)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def clock(api: Api) -> Iterator[FakeClock]:
    """The server's clock, reset to real time after the test."""
    yield api.clock
    api.clock.fixed = None


@pytest.fixture
async def brand(api: Api) -> Brand:
    return await api.new_brand()
