"""Helpers for tests: decoding rich gRPC errors, building requests, starting a server
process and running the CLI."""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import grpc

from attain.v1 import progress_pb2 as ppb
from attain.v1 import targets_pb2 as tpb
from attain.v1 import types_pb2 as typ
from attain_client import AttainError, timestamp
from attain_server.application.brands import create_brand
from attain_server.application.members import upsert_member
from attain_server.application.sealing import Sealer, new_key, parse_keys
from attain_server.domain.model import Criterion, Kpi, Member, Period, PeriodKind, TargetDefinition
from attain_server.store.codec import to_document
from attain_server.store.engine import Database
from attain_server.store.tables import TargetRow

# ---------------------------------------------------------------- in-process setup

# The key every test server and worker of this run seals SFTP credentials with
# (ATTAIN_SECRETS_KEY of the processes the tests start).
SECRETS_KEY = new_key()
SEALER = Sealer(parse_keys(SECRETS_KEY, "the tests' key"))


def amount_target(code: str, start: date, value: Decimal = Decimal(100)) -> TargetDefinition:
    """A MONTHLY target of one TRANSACTION_AMOUNT criterion ``c1``, from ``start``."""
    return TargetDefinition(
        code=code,
        criteria=(Criterion("c1", Kpi.TRANSACTION_AMOUNT, value),),
        period=Period(PeriodKind.MONTHLY, start),
    )


@asynccontextmanager
async def migrated(url: str) -> AsyncIterator[Database]:
    """A Database on `url` with its schema migrated, disposed of afterwards."""
    database = Database(url)
    await database.migrate()
    try:
        yield database
    finally:
        await database.dispose()


async def stored_target(db: Database, brand: str, definition: TargetDefinition) -> None:
    """An active target written straight to the store, skipping every check: a definition
    saved before today's checks (or by hand) looks like this."""
    now = datetime.now(UTC)
    async with db.write() as s:
        s.add(
            TargetRow(
                brand_code=brand,
                code=definition.code,
                state="ACTIVE",
                definition=to_document(definition),
                version=1,
                create_time=now,
                update_time=now,
            )
        )


async def brand_with_members(
    db: Database, code: str, members: Sequence[str], now: datetime, zone: str = "UTC"
) -> None:
    """A brand and its members, through the application's own admin functions."""
    await create_brand(db=db, code=code, time_zone=zone, now=now)
    for member in members:
        await upsert_member(db=db, brand=code, member=Member(member), now=now)


# ---------------------------------------------------------------- crafted key files


def with_rounds(pem: str, rounds: int) -> str:
    """An encrypted OpenSSH key whose header asks for ``rounds`` bcrypt rounds (written into
    the header: deriving a key that slowly is what the check must not do)."""
    lines = pem.strip().splitlines()
    blob = bytearray(base64.b64decode("".join(lines[1:-1])))
    at = len(b"openssh-key-v1\x00")
    for _ in range(2):  # the cipher and kdf names
        at += 4 + struct.unpack_from(">I", blob, at)[0]
    salt = struct.unpack_from(">I", blob, at + 4)[0]
    struct.pack_into(">I", blob, at + 8 + salt, rounds)
    body = base64.b64encode(bytes(blob)).decode()
    return "\n".join([lines[0], *(body[i : i + 70] for i in range(0, len(body), 70)), lines[-1]])


def _der(tag: int, *parts: bytes) -> bytes:
    body = b"".join(parts)
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + body


def pkcs8_with_iterations(count: int) -> str:
    """An encrypted PKCS#8 PEM (PBES2: PBKDF2 and AES-256-CBC) whose parameters ask for
    ``count`` PBKDF2 iterations; its ciphertext is noise, as a crafted file's would be."""
    oid = {
        "pbes2": bytes.fromhex("2a864886f70d01050d"),
        "pbkdf2": bytes.fromhex("2a864886f70d01050c"),
        "aes256-cbc": bytes.fromhex("60864801650304012a"),
    }
    count_bytes = count.to_bytes((count.bit_length() + 8) // 8, "big")
    kdf = _der(
        0x30, _der(0x06, oid["pbkdf2"]), _der(0x30, _der(0x04, b"s" * 8), _der(0x02, count_bytes))
    )
    cipher = _der(0x30, _der(0x06, oid["aes256-cbc"]), _der(0x04, b"i" * 16))
    algorithm = _der(0x30, _der(0x06, oid["pbes2"]), _der(0x30, kdf, cipher))
    der = _der(0x30, algorithm, _der(0x04, b"x" * 48))
    body = base64.b64encode(der).decode()
    return f"-----BEGIN ENCRYPTED PRIVATE KEY-----\n{body}\n-----END ENCRYPTED PRIVATE KEY-----\n"


# ---------------------------------------------------------------- requests


def auth(secret: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {secret}"),)


def D(value: str) -> typ.Decimal:
    return typ.Decimal(value=value)


class Failure:
    """What a failed call said: code, message, ErrorInfo reason and field violations."""

    def __init__(self, error: grpc.aio.AioRpcError) -> None:
        decoded = AttainError(error)  # the Python client's decoding of the status details
        self.code = decoded.code()
        self.message = decoded.message
        self.reason = decoded.reason
        self.violations: dict[str, str] = {v.field: v.reason for v in decoded.violations}

    def __repr__(self) -> str:
        return f"Failure({self.code.name}, {self.message!r}, {self.violations})"


async def fails(call: Awaitable[Any]) -> Failure:
    """Awaits a call that must fail and returns what it said."""
    try:
        result = await call
    except grpc.aio.AioRpcError as error:
        return Failure(error)
    raise AssertionError(f"the call succeeded with {result!r}")


def monthly_target(
    code: str = "NOV-SALES", value: str = "10000.00", start: str = "2026-01-01", **kwargs: Any
) -> tpb.Target:
    """SPEC example 1's target: monthly total transaction, FIXED 1,000 points at 100%, with
    cycles from ``start``."""
    target = tpb.Target(
        code=code,
        display_name="November sales",
        criteria=[tpb.Criterion(kpi=typ.KPI_TRANSACTION_AMOUNT, target_value=D(value))],
        period=tpb.Period(kind=typ.PERIOD_KIND_MONTHLY, start_date=start),
        rules=[tpb.RewardRule(fixed=tpb.FixedRule(incentive=typ.Incentive(points=1000)))],
    )
    for key, item in kwargs.items():
        field = getattr(target, key)
        if hasattr(field, "CopyFrom"):
            field.CopyFrom(item)
        elif isinstance(item, list):
            del field[:]
            field.extend(item)
        else:
            setattr(target, key, item)
    return target


# ---------------------------------------------------------------- progress helpers

if TYPE_CHECKING:
    from conftest import Api, Brand

JAKARTA = ZoneInfo("Asia/Jakarta")
NOV_15 = datetime(2026, 11, 15, 12, tzinfo=JAKARTA)


ts = timestamp  # an aware datetime as a Timestamp, as the client makes it


def line(
    amount: str, sku: str = "SKU-1", qty: str = "1", category: str = "general"
) -> ppb.TransactionLine:
    return ppb.TransactionLine(sku=sku, category=category, quantity=D(qty), amount=D(amount))


def sale(
    txn_id: str,
    amount: str,
    when: datetime = NOV_15,
    member: str = "M-001",
    store: str = "S1",
    lines: list[ppb.TransactionLine] | None = None,
) -> ppb.Transaction:
    return ppb.Transaction(
        id=txn_id,
        member_id=member,
        occurred_time=timestamp(when),
        store_id=store,
        type=ppb.TRANSACTION_TYPE_SALE,
        lines=lines or [line(amount)],
    )


def refund(
    txn_id: str,
    original: str,
    amount: str,
    when: datetime = NOV_15,
    member: str = "M-001",
    qty: str = "0",
    sku: str = "SKU-1",
) -> ppb.Transaction:
    return ppb.Transaction(
        id=txn_id,
        member_id=member,
        occurred_time=timestamp(when),
        store_id="S1",
        type=ppb.TRANSACTION_TYPE_RETURN,
        original_transaction_id=original,
        lines=[line(amount, sku=sku, qty=qty)],
    )


async def setup(api: Api, brand: Brand, target: tpb.Target, *members: str) -> None:
    await api.targets.CreateTarget(tpb.CreateTargetRequest(target=target), metadata=brand.admin)
    for member in members or ("M-001",):
        await api.targets.UpsertMember(
            tpb.UpsertMemberRequest(member=tpb.Member(external_id=member)), metadata=brand.admin
        )


async def record(api: Api, brand: Brand, txn: ppb.Transaction) -> ppb.RecordTransactionResponse:
    return await api.progress.RecordTransaction(
        ppb.RecordTransactionRequest(transaction=txn), metadata=brand.admin
    )


async def progress(
    api: Api, brand: Brand, target: str = "NOV-SALES", member: str = "M-001", cycle: str = ""
) -> ppb.Progress:
    response = await api.progress.GetProgress(
        ppb.GetProgressRequest(member_id=member, target_code=target, cycle=cycle),
        metadata=brand.admin,
    )
    return response.progress


# ---------------------------------------------------------------- CLI helpers


def attain_cli(
    address: str,
    key: str | None,
    *args: str,
    config: str = "/nonexistent",
    env: dict[str, str | None] | None = None,
    stdin: str | None = None,
) -> Any:
    """Runs `attain --address ADDRESS --key KEY ARGS...` in-process (Typer's runner) with a
    wide terminal and no config file; returns the click Result (exit_code, stdout, stderr).
    `env` adds to (or, with None values, removes from) the command's environment; `stdin`
    is what the command reads from standard input."""
    from typer.testing import CliRunner

    from attain_cli.main import app

    runner = CliRunner()
    head = ["--address", address, "--config", config]
    if key is not None:
        head += ["--key", key]
    return runner.invoke(
        app,
        [*head, *args],
        env={"COLUMNS": "160", "ATTAIN_KEY": None, **(env or {})},
        input=stdin,
    )


def ok(result: Any) -> Any:
    """A CLI result that must have succeeded (exit code 0, no traceback); returns it."""
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result


def as_json(result: Any) -> Any:
    """The JSON a successful CLI result printed."""
    return json.loads(ok(result).stdout)


# ---------------------------------------------------------------- server processes

BIN = Path(sys.executable).parent


def start_server(
    log_path: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> tuple[subprocess.Popen[bytes], str]:
    """Starts `attain-server serve --listen 127.0.0.1:0 ARGS...` with its JSON log written to
    `log_path` and returns the process and the address it logged that it listens on. `env` is
    its environment (default: this process's). The log goes to a file, not a pipe: a pipe
    nobody drains would block the server once full. A server that exits first or does not
    report its address in time is killed and fails the test."""
    environment = {**(os.environ if env is None else env), "ATTAIN_LOG_FORMAT": "json"}
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [BIN / "attain-server", "serve", "--listen", "127.0.0.1:0", *args],
            stderr=log_file,
            stdout=subprocess.DEVNULL,
            env=environment,
        )
    try:
        return proc, _logged_address(log_path, proc, time.monotonic() + timeout)
    except BaseException:
        proc.kill()
        proc.wait(timeout=10)
        raise


def _logged_address(log_path: Path, proc: subprocess.Popen[bytes], deadline: float) -> str:
    while time.monotonic() < deadline:
        logged = log_path.read_text(errors="replace")
        for entry in logged.splitlines():
            if entry.startswith("{") and '"listening"' in entry:
                address = str(json.loads(entry)["address"])
                assert address.startswith("127.0.0.1:"), address
                return address
        if proc.poll() is not None:
            raise AssertionError(f"attain-server exited with {proc.returncode}: {logged}")
        time.sleep(0.05)
    raise AssertionError(f"attain-server did not report its address in time: {log_path}")
