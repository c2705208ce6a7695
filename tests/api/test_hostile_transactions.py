"""Hostile and broken transactions: each is refused alone, naming its field and why, and the
transactions beside it (in a shared commit or in the same stream message) are recorded."""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from attain.v1 import progress_pb2 as ppb
from conftest import Api, Brand, FakeClock
from support import NOV_15, fails, line, monthly_target, progress, record, refund, sale, setup, ts


def _control(char: str) -> str:
    """The label rule's reason for a value holding ``char``."""
    return f"must not contain control, format or invisible characters (found {_name(char)})"


def _name(char: str) -> str:
    return f"U+{ord(char):04X} {unicodedata.name(char, '')}".rstrip()


TOO_LONG = "must be at most 128 characters"
YEARS = "must be in the years 1900 to 2999"
LINES = "at most 1000 lines per transaction"
# Where each of a transaction's strings is, as a refusal names it.
STRING_FIELDS = ["id", "member_id", "store_id", "lines[0].sku", "lines[0].category"]


def _put(txn: ppb.Transaction, field: str, value: str) -> None:
    """Sets `field` ("id" or "lines[0].sku") of `txn` to `value`."""
    if field.startswith("lines[0]."):
        setattr(txn.lines[0], field.removeprefix("lines[0]."), value)
    else:
        setattr(txn, field, value)


def _at(txn: ppb.Transaction, stamp: Timestamp) -> ppb.Transaction:
    txn.occurred_time.CopyFrom(stamp)
    return txn


def _messages(*batches: Sequence[ppb.Transaction]) -> AsyncIterator[ppb.RecordTransactionsRequest]:
    async def gen() -> AsyncIterator[ppb.RecordTransactionsRequest]:
        for batch in batches:
            yield ppb.RecordTransactionsRequest(transactions=batch)

    return gen()


async def _stream(
    api: Api, brand: Brand, *batches: Sequence[ppb.Transaction]
) -> ppb.RecordTransactionsResponse:
    return await api.progress.RecordTransactions(_messages(*batches), metadata=brand.admin)


def _refusals(summary: ppb.RecordTransactionsResponse) -> list[tuple[int, str, str, str]]:
    return [(r.index, r.transaction_id, r.reason, r.field) for r in summary.refusals]


async def _achieved(api: Api, brand: Brand) -> Decimal:
    return Decimal((await progress(api, brand)).achieved_value.value)


class BatchSpy:
    """Wraps the server's recorder (a real seam: App.recorder) to see which transactions share
    a unit of work, each unit taking a moment as on a busy server so that concurrent calls
    arrive while one is being written and share the next."""

    def __init__(self, api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
        self.batches: list[list[str]] = []
        original = api.app.recorder.record

        async def spying(brand_code: str, txns: Any, *args: Any, **kwargs: Any) -> Any:
            self.batches.append([t.id for t in txns])
            await asyncio.sleep(0.002)
            return await original(brand_code, txns, *args, **kwargs)

        monkeypatch.setattr(api.app.recorder, "record", spying)

    def shared(self, ids: Iterable[str]) -> bool:
        """Whether one of `ids` went to the recorder in a batch with another transaction."""
        wanted = set(ids)
        return any(len(b) > 1 and wanted.intersection(b) for b in self.batches)


async def _unary(api: Api, brand: Brand, txn: ppb.Transaction) -> grpc.StatusCode | int:
    """The outcome of a RecordTransaction, or the status code it failed with."""
    try:
        return (await record(api, brand, txn)).outcome
    except grpc.aio.AioRpcError as error:
        return error.code()


# ---------------------------------------------------------------- strings


@pytest.mark.parametrize("field", STRING_FIELDS)
async def test_a_nul_in_a_stream_message_refuses_that_transaction_alone(
    api: Api, brand: Brand, clock: FakeClock, field: str
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target(value="1000000.00"))
    txns = [sale(f"S{i}", "1.00") for i in range(1000)]
    _put(txns[500], field, "BAD\x00ID")
    summary = await _stream(api, brand, txns)
    assert (summary.accepted, summary.duplicate, summary.refused) == (999, 0, 1)
    assert _refusals(summary) == [(500, txns[500].id, "INVALID_ARGUMENT", field)]
    assert summary.refusals[0].message == f"transaction.{field}: {_control(chr(0))}"
    assert await _achieved(api, brand) == 999


async def test_every_hostile_string_is_refused_alone_naming_its_field(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target(value="1000000.00"))
    await record(api, brand, sale("ORIGINAL", "50.00"))
    # NUL, another C0 control, DEL, two C1 controls (NEL inside a value is no space at its
    # end), and one character past the 128 the columns hold.
    values = {char: _control(char) for char in ("\x00", "\x1b", "\x7f", "\x85", "\x9f")}
    message: list[ppb.Transaction] = []
    expected: list[tuple[int, str, str, str]] = []
    reasons: list[str] = []
    for field in [*STRING_FIELDS, "original_transaction_id"]:
        for char, reason in [*values.items(), ("", TOO_LONG)]:
            value = f"A{char}B" if char else "x" * 129
            message.append(sale(f"G{len(message)}", "1.00"))  # a good neighbour
            bad = (
                refund(f"R{len(message)}", "ORIGINAL", "1.00")
                if field == "original_transaction_id"
                else sale(f"B{len(message)}", "1.00")
            )
            _put(bad, field, value)
            expected.append((len(message), bad.id, "INVALID_ARGUMENT", field))
            reasons.append(f"transaction.{field}: {reason}")
            message.append(bad)
    summary = await _stream(api, brand, message)
    assert (summary.accepted, summary.refused) == (len(expected), len(expected))
    assert _refusals(summary) == expected
    assert [r.message for r in summary.refusals] == reasons
    assert await _achieved(api, brand) == 50 + len(expected)


async def test_concurrent_unary_calls_with_a_few_bad_ones_answer_each_alone(
    api: Api, brand: Brand, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target(value="1000000.00"))
    calls = [sale(f"U{i}", "1.00") for i in range(320)]
    bad: dict[int, str] = {}  # position -> the field its violation names
    for position, field, value in [
        (7, "id", "U\x00BAD"),
        (70, "member_id", "M\x00BAD"),
        (130, "lines[0].sku", "SKU\x7f"),
        (190, "store_id", "S\x85X"),
        (250, "lines[0].category", "cat\x00"),
        (300, "id", "U" * 129),
    ]:
        _put(calls[position], field, value)
        bad[position] = f"transaction.{field}"
    calls[40].occurred_time.nanos = -1
    calls[100].occurred_time.seconds = 253_402_300_800
    del calls[160].lines[:]
    calls[160].lines.extend([line("1.00")] * 1001)
    bad.update({40: "transaction.occurred_time", 100: "transaction.occurred_time"})
    bad[160] = "transaction.lines"

    spy = BatchSpy(api, monkeypatch)
    answers = await asyncio.gather(
        *(
            api.progress.RecordTransaction(
                ppb.RecordTransactionRequest(transaction=t), metadata=brand.admin
            )
            for t in calls
        ),
        return_exceptions=True,
    )
    monkeypatch.undo()
    for position, answer in enumerate(answers):
        if position in bad:
            assert isinstance(answer, grpc.aio.AioRpcError), (position, answer)
            assert answer.code() is grpc.StatusCode.INVALID_ARGUMENT, (position, answer)
            assert bad[position] in (answer.details() or ""), (position, answer.details())
        else:
            assert isinstance(answer, ppb.RecordTransactionResponse), (position, answer)
            assert answer.outcome == ppb.RECORD_OUTCOME_ACCEPTED
    # The bad transactions that reached group commit shared it with good ones.
    assert spy.shared(calls[p].id for p in (7, 70, 130, 190, 250)), spy.batches
    assert await _achieved(api, brand) == 320 - len(bad)


# ---------------------------------------------------------------- a failure inside the store


async def _poison(api: Api, brand: Brand) -> list[str]:
    """A trigger that fails the insert of this brand's transactions whose id starts with
    POISON-: a failure at write time that no check before the database can see. Returns the
    statements that remove it again."""
    who, match = brand.code, "substr(NEW.id, 1, 7) = 'POISON-'"
    name = f"poison_{who.lower()}"
    if api.app.db.is_sqlite:
        # abs() of the smallest integer is an "integer overflow" error: a plain fault, as a
        # broken disk or a bug would raise, not a constraint the recorder retries.
        create = [
            f"CREATE TRIGGER {name} BEFORE INSERT ON txn"
            f" WHEN NEW.brand_code = '{who}' AND {match}"
            " BEGIN SELECT abs(-9223372036854775808); END"
        ]
        drop = [f"DROP TRIGGER {name}"]
    else:
        create = [
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            f" IF NEW.brand_code = '{who}' AND {match} THEN RAISE EXCEPTION 'poisoned row';"
            " END IF; RETURN NEW; END $$",
            f"CREATE TRIGGER {name} BEFORE INSERT ON txn FOR EACH ROW EXECUTE FUNCTION {name}()",
        ]
        drop = [f"DROP TRIGGER {name} ON txn", f"DROP FUNCTION {name}()"]
    await _ddl(api, create)
    return drop


async def _ddl(api: Api, statements: list[str]) -> None:
    async with api.app.db.engine.begin() as conn:
        for statement in statements:
            await conn.exec_driver_sql(statement)


async def test_a_transaction_that_fails_in_the_store_fails_alone(
    api: Api, brand: Brand, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target(value="1000000.00"))
    drop = await _poison(api, brand)
    try:
        # Unary calls sharing group commits with two that fail at write time.
        calls = [sale(f"P{i}", "1.00") for i in range(64)]
        calls[20].id, calls[41].id = "POISON-1", "POISON-2"
        spy = BatchSpy(api, monkeypatch)
        answers = await asyncio.gather(*(_unary(api, brand, t) for t in calls))
        monkeypatch.undo()
        assert spy.shared(["POISON-1", "POISON-2"]), spy.batches
        for position, answer in enumerate(answers):
            wanted = (
                grpc.StatusCode.INTERNAL if position in (20, 41) else ppb.RECORD_OUTCOME_ACCEPTED
            )
            assert answer == wanted, (position, answer)
        failure = await fails(record(api, brand, sale("POISON-3", "1.00")))
        assert (failure.code, failure.message) == (
            grpc.StatusCode.INTERNAL,
            "internal error; see the server log",
        )
        # A stream: the message with the poisoned transaction records its neighbours, and the
        # stream goes on to the next message.
        first = [sale(f"Q{i}", "1.00") for i in range(10)]
        second = [sale(f"Q{i}", "1.00") for i in range(10, 20)]
        second[5].id = "POISON-4"
        third = [sale(f"Q{i}", "1.00") for i in range(20, 25)]
        summary = await _stream(api, brand, first, second, third)
        assert (summary.accepted, summary.refused) == (24, 1)
        assert _refusals(summary) == [(15, "POISON-4", "INTERNAL", "")]
        assert summary.refusals[0].message == "internal error; see the server log"
    finally:
        await _ddl(api, drop)
    assert await _achieved(api, brand) == 62 + 24
    # Nothing of the poisoned ones was kept: each records now, for the first time.
    again = await _unary(api, brand, sale("POISON-1", "1.00"))
    assert again == ppb.RECORD_OUTCOME_ACCEPTED


# ---------------------------------------------------------------- times and sizes


def _stamp(seconds: int, nanos: int = 0) -> Timestamp:
    return Timestamp(seconds=seconds, nanos=nanos)


# Each impossible or unsupported occurred_time, and why it is refused.
BAD_TIMES = [
    (_stamp(1_763_000_000, -1), "nanos must be between 0 and 999,999,999, not -1"),
    (
        _stamp(1_763_000_000, 1_000_000_000),
        "nanos must be between 0 and 999,999,999, not 1000000000",
    ),
    (_stamp(253_402_300_800), f"{YEARS}, not 253402300800 seconds from 1970"),
    (_stamp(-62_135_596_801), f"{YEARS}, not -62135596801 seconds from 1970"),
    (ts(datetime(1, 1, 1, tzinfo=UTC)), YEARS),  # year 1, which a datetime holds
    (ts(datetime(1899, 12, 31, 23, 59, 59, tzinfo=UTC)), YEARS),
    (ts(datetime(3000, 1, 1, tzinfo=UTC)), YEARS),
]


async def test_invalid_and_unsupported_times_are_refused_naming_occurred_time(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target())
    for n, (stamp, reason) in enumerate(BAD_TIMES):
        failure = await fails(record(api, brand, _at(sale(f"T{n}", "1"), stamp)))
        assert failure.code is grpc.StatusCode.INVALID_ARGUMENT, (stamp, failure)
        assert failure.violations == {"transaction.occurred_time": reason}, stamp
    # The first instant of the supported years is a time like any other.
    early = await record(api, brand, _at(sale("EARLY", "1"), ts(datetime(1900, 1, 1, tzinfo=UTC))))
    assert early.outcome == ppb.RECORD_OUTCOME_ACCEPTED


async def test_year_3000_is_refused_even_when_the_clock_is_there(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    await setup(api, brand, monthly_target())
    clock.set(datetime(3000, 6, 1, tzinfo=UTC))
    failure = await fails(
        record(api, brand, _at(sale("Y3000", "1"), ts(datetime(3000, 1, 1, tzinfo=UTC))))
    )
    assert failure.violations == {"transaction.occurred_time": YEARS}


async def test_bad_times_in_a_stream_refuse_their_transactions_alone(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target(value="1000000.00"))
    first = [sale(f"A{i}", "1.00") for i in range(3)]
    second: list[ppb.Transaction] = []
    expected = []
    for n, (stamp, _) in enumerate(BAD_TIMES):
        second.append(sale(f"B{n}", "1.00"))
        expected.append((3 + len(second), f"X{n}", "INVALID_ARGUMENT", "occurred_time"))
        second.append(_at(sale(f"X{n}", "1.00"), stamp))
    third = [sale(f"C{i}", "1.00") for i in range(2)]
    summary = await _stream(api, brand, first, second, third)
    assert _refusals(summary) == expected
    assert [r.message for r in summary.refusals] == [
        f"transaction.occurred_time: {reason}" for _, reason in BAD_TIMES
    ]
    assert (summary.accepted, summary.refused) == (3 + len(BAD_TIMES) + 2, len(BAD_TIMES))
    assert await _achieved(api, brand) == 3 + len(BAD_TIMES) + 2


async def test_too_many_lines_is_one_violation_naming_lines(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target())
    # Every line bad as well: refused for their number, without reading each of them.
    huge = sale("HUGE", "1", lines=[line("-1", sku="")] * 1001)
    failure = await fails(record(api, brand, huge))
    assert (failure.code, failure.violations) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        {"transaction.lines": LINES},
    )
    summary = await _stream(api, brand, [sale("OK-1", "1"), huge, sale("OK-2", "1")])
    assert _refusals(summary) == [(1, "HUGE", "INVALID_ARGUMENT", "lines")]
    assert summary.refusals[0].message == f"transaction.lines: {LINES}"
    assert summary.accepted == 2
    # At the limit, a transaction is recorded.
    full = await record(api, brand, sale("FULL", "1", lines=[line("1")] * 1000))
    assert full.outcome == ppb.RECORD_OUTCOME_ACCEPTED


async def test_refusals_of_many_bad_lines_keep_the_summary_small(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target())
    # 200 transactions of 1,000 bad lines each: naming every bad line would make a summary
    # of megabytes, more than a client takes.
    bad = [sale(f"L{i}", "1", lines=[line("x", sku="")] * 1000) for i in range(200)]
    summary = await _stream(api, brand, [*bad, sale("OK", "1")])
    assert (summary.accepted, summary.refused) == (1, 200)
    first = summary.refusals[0]
    assert first.field == "lines[0].amount.value"
    assert first.message.startswith(
        "transaction.lines[0].amount.value: 'x' is not a decimal number like 1234.50; "
    )
    assert first.message.endswith("; and 990 more")
    assert summary.ByteSize() < 200_000


@pytest.mark.parametrize("field", [*STRING_FIELDS, "original_transaction_id"])
async def test_a_129_character_string_is_refused_naming_its_field(
    api: Api, brand: Brand, clock: FakeClock, field: str
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target())
    await record(api, brand, sale("ORIGINAL", "5"))
    txn = refund("R-1", "ORIGINAL", "1") if field == "original_transaction_id" else sale("S", "1")
    _put(txn, field, "x" * 129)
    failure = await fails(record(api, brand, txn))
    assert failure.code is grpc.StatusCode.INVALID_ARGUMENT
    assert failure.violations == {f"transaction.{field}": TOO_LONG}
    _put(txn, field, "x" * 128)  # as long as a column holds: fine
    if field not in ("member_id", "original_transaction_id"):  # unknown as such, but well-formed
        assert (await record(api, brand, txn)).outcome == ppb.RECORD_OUTCOME_ACCEPTED


async def test_a_message_of_too_many_transactions_ends_the_stream_saying_what_was_stored(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target(value="1000000.00"))
    first = [sale(f"M{i}", "1.00") for i in range(5)] + [sale("M0", "1.00")]
    first.append(sale("BAD", "1.00", member="M\x00"))
    too_many = [sale(f"N{i}", "1.00") for i in range(1001)]
    failure = await fails(_stream(api, brand, first, too_many))
    assert failure.code is grpc.StatusCode.INVALID_ARGUMENT
    assert failure.violations == {
        "transactions": "at most 1000 transactions per message: this message was not recorded;"
        " the 7 transactions before it were (5 accepted, 1 duplicate, 1 refused)"
    }
    assert await _achieved(api, brand) == 5
