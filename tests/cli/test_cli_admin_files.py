"""attain_cli.files without a server: exact numbers from YAML/JSON, enum names, field paths,
and CSV rows with their line numbers (a bad line does not stop the rows after it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from attain.v1 import targets_pb2 as tpb
from attain_cli.files import CsvFile, describe, load_message
from attain_cli.runner import InputError


def test_yaml_numbers_stay_exact_and_codes_keep_their_text(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "code: 010\n"  # a YAML 1.1 octal int: the code is the text, not 8
        "offset_days: 7\n"
        "criteria:\n"
        "  - kpi: 4\n"  # enum numbers are accepted as in proto JSON
        "    target_value: 0.1000000000000000055511151231257827\n"
        "    level_target_values: {GOLD: 12345678901234567890.12}\n"
        "period: {kind: every-n-days, start_date: 2026-01-05, every_n_days: 90}\n"
        "audience: {kind: AUDIENCE_KIND_GROUPS, groups: [distributor]}\n"
    )
    target = load_message(path, tpb.Target())
    assert target.code == "010" and target.offset_days == 7
    assert target.criteria[0].kpi == 4
    assert target.criteria[0].target_value.value == "0.1000000000000000055511151231257827"
    assert target.criteria[0].level_target_values["GOLD"].value == "12345678901234567890.12"
    assert target.period.kind == 5 and target.period.start_date == "2026-01-05"
    assert list(target.audience.groups) == ["distributor"]


def test_json_decimals_as_numbers_strings_or_messages(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(
        '{"minAttainmentPercent": 50.50, "capPoints": "300",'
        ' "milestones": {"milestones": [{"attainment_percent": {"value": "75"},'
        ' "incentive": {"badge": "Champion"}}]}}'
    )
    rule = load_message(path, tpb.RewardRule())
    assert rule.min_attainment_percent.value == "50.50" and rule.cap_points == 300
    assert rule.milestones.milestones[0].attainment_percent.value == "75"
    assert rule.milestones.milestones[0].incentive.badge == "Champion"


@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        ("criteria:\n  - target_value: 1,000\n", "criteria[0].target_value", "'1,000' is not"),
        ("criteria:\n  - target_value: true\n", "criteria[0].target_value", "got true"),
        ("period: {every_n_days: 2.5}\n", "period.every_n_days", "expected a whole number"),
        ("offset_days: 99999999999\n", "offset_days", "out of range"),
        ("display_name: [a]\n", "display_name", "expected text, got a list"),
        ("audience: {kind: EVERYONE}\n", "audience.kind", "use one of ALL_MEMBERS, GROUPS"),
        (
            "rules:\n  - fixed: {incentive: {points: 1, badge: B}}\n",
            "rules[0].fixed.incentive",
            "both",
        ),
    ],
)
def test_bad_fields_are_named_by_path(tmp_path: Path, text: str, where: str, reason: str) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(InputError) as caught:
        load_message(path, tpb.Target())
    assert caught.value.where == f"{path}: {where}"
    assert reason in caught.value.reason


def test_csv_rows_have_their_lines_and_a_bad_line_does_not_stop_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(
        b"\xef\xbb\xbfexternal_id,level\r\n"
        b"M-1,GOLD\r\n"
        b"\r\n"
        b'M-2,"multi\nline"\n'
        b"M-\xff3,GOLD\n"
        b"M-4\n"
        b"M-5,SILVER\n"
    )
    seen: list[tuple[int, str]] = []
    with CsvFile(path, required=["external_id"], optional=["level"]) as rows:
        for row in rows:
            if row.problem is not None:
                seen.append((row.line, describe(row.line, row.problem)))
            else:
                seen.append((row.line, row.get("level")))
        assert rows.bytes_read == rows.size
    assert seen == [
        (2, "GOLD"),
        (4, "multi\nline"),
        (6, "line 6: not UTF-8 text"),
        (7, "line 7: has 1 fields; the header has 2"),
        (8, "SILVER"),
    ]


def test_csv_header_problems_name_line_1(tmp_path: Path) -> None:
    path = tmp_path / "v.csv"
    path.write_text("member_id,cycle,value,extra\n")
    with (
        pytest.raises(InputError) as caught,
        CsvFile(path, required=["member_id", "cycle"]) as rows,
    ):
        list(rows)
    assert caught.value.where == f"{path}, line 1"
    assert caught.value.reason == "unknown column value, extra; the header is member_id,cycle"
