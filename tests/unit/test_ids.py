"""Award and ledger ids: they sort in the order a process makes them, and never repeat."""

from __future__ import annotations

from attain_server.application.awards import new_id


def test_ids_sort_in_the_order_they_are_made_and_never_repeat() -> None:
    ids = [new_id() for _ in range(20_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 24 and int(i, 16) >= 0 for i in ids)
