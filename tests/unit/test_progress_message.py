"""A progress view becomes the message it describes: every field, present or absent.

`mapping.progress_to_proto` fills sub-messages in place (decision 0012); the reference here
builds the same message the plain way, from whole sub-messages, for views with and without
milestones, awards and an update time, and with one or two criteria.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from attain.v1 import progress_pb2 as ppb
from attain.v1 import types_pb2 as typ
from attain_server.api import progress_mapping as pm
from attain_server.api import reward_mapping as rm
from attain_server.application.standings import MilestoneView, ProgressView
from attain_server.domain import attainment as att
from attain_server.domain.awards import Award
from attain_server.domain.model import Kpi
from attain_server.domain.periods import CycleState, CycleWindow

D = Decimal
START = datetime(2026, 10, 31, 17, tzinfo=UTC)
END = datetime(2026, 11, 30, 17, tzinfo=UTC)
GRACE = datetime(2026, 12, 3, 17, tzinfo=UTC)
UPDATED = datetime(2026, 11, 15, 3, 4, 5, 678901, tzinfo=UTC)


def _ts(when: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(when)
    return ts


def _dec(value: Decimal) -> typ.Decimal:
    return typ.Decimal(value=str(value))


def reference(v: ProgressView) -> ppb.Progress:
    """The message built the plain way: whole sub-messages passed to the constructor."""
    s = v.standing
    nxt = v.next_milestone
    return ppb.Progress(
        member_id=v.member_id,
        target_code=v.target_code,
        cycle=v.window.name,
        cycle_state=typ.CYCLE_STATE_OPEN,
        cycle_start_time=_ts(v.window.start_time),
        cycle_end_time=_ts(v.window.end_time),
        grace_end_time=_ts(v.window.grace_end_time),
        level=v.level,
        criteria=[
            ppb.CriterionProgress(
                criterion_id=c.criterion_id,
                kpi=typ.Kpi.Value(f"KPI_{c.kpi.value}"),
                target_value=_dec(c.target_value),
                achieved_value=_dec(c.achieved),
                attainment_percent=_dec(c.attainment_percent),
                remaining_value=_dec(c.remaining),
            )
            for c in s.criteria
        ],
        target_value=_dec(s.primary.target_value),
        achieved_value=_dec(s.primary.achieved),
        remaining_value=_dec(s.primary.remaining),
        attainment_percent=_dec(s.attainment_percent),
        attainment_display=att.display_percent(s.attainment_percent),
        colour=typ.Colour.Value(f"COLOUR_{v.colour.value}"),
        complete=s.complete,
        milestones=[
            ppb.MilestoneStatus(
                rule_id=ms.rule_id,
                attainment_percent=_dec(ms.attainment_percent),
                reached=ms.reached,
            )
            for ms in v.milestones
        ],
        next_milestone=(
            ppb.MilestoneStatus(
                rule_id=nxt.rule_id,
                attainment_percent=_dec(nxt.attainment_percent),
                reached=nxt.reached,
            )
            if nxt
            else None
        ),
        days_left=v.days_left,
        daily_pace_needed=_dec(v.daily_pace),
        update_time=_ts(v.update_time) if v.update_time else None,
        version=v.version,
        awards=[rm.award_to_proto(a) for a in v.awards],
    )


def _award(milestone: str) -> Award:
    return Award(
        "B", f"A{milestone}", "SALES", "2026-11", "M-1", "ms", milestone, "POINTS", "GRANTED",
        50, "POINTS", "", "", "", "", UPDATED, UPDATED,
    )  # fmt: skip


def _view(criteria: int, milestones: bool, awards: bool, updated: bool) -> ProgressView:
    items = [("c1", Kpi.TRANSACTION_AMOUNT, D("10000.00"), D("9500.50"))]
    if criteria == 2:
        items.append(("c2", Kpi.VISIT_COUNT, D("4"), D("1")))
    standing = att.standing(items)
    steps = (
        (MilestoneView("ms", D("50"), True), MilestoneView("ms", D("100"), False))
        if milestones
        else ()
    )
    return ProgressView(
        member_id="M-1",
        target_code="SALES",
        window=CycleWindow("2026-11", date(2026, 11, 1), date(2026, 11, 30), START, END, GRACE),
        state=CycleState.OPEN,
        level="GOLD",
        standing=standing,
        colour=att.colour(items[0][3], items[0][2]),
        milestones=steps,
        days_left=15,
        daily_pace=D("33.30"),
        update_time=UPDATED if updated else None,
        version=7,
        awards=(_award("50"),) if awards else (),
    )


@pytest.mark.parametrize("criteria", [1, 2])
@pytest.mark.parametrize("milestones", [False, True])
@pytest.mark.parametrize("awards", [False, True])
@pytest.mark.parametrize("updated", [False, True])
def test_progress_message_matches_the_plain_construction(
    criteria: int, milestones: bool, awards: bool, updated: bool
) -> None:
    view = _view(criteria, milestones, awards, updated)
    built = pm.progress_to_proto(view)
    assert built == reference(view)
    assert built.HasField("next_milestone") == milestones
    assert built.HasField("update_time") == updated
    assert built.SerializeToString(deterministic=True) == reference(view).SerializeToString(
        deterministic=True
    )
