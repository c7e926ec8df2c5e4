"""The comparison the crash and fault proofs rest on finds every kind of difference."""

from proofs._karbon_runs import Snapshot, compare

CLEAN: Snapshot = {
    "clients": [('{"client_key": "a"}', '{"name": "A"}'), ('{"client_key": "b"}', '{"name": "B"}')],
    "raw_responses": [('["users", "page", "u"]', '[200, "d1"]')],
}


def test_identical_runs_differ_in_nothing() -> None:
    found = compare(CLEAN, CLEAN)
    assert (found.compared, found.total) == (3, 0)


def test_each_kind_of_difference_is_counted() -> None:
    other: Snapshot = {
        "clients": [
            ('{"client_key": "a"}', '{"name": "A changed"}'),
            ('{"client_key": "c"}', '{"name": "C"}'),
        ],
        "raw_responses": [('["users", "page", "u"]', '[200, "d1"]')] * 2,
    }
    found = compare(CLEAN, other)
    assert (found.missing, found.extra, found.duplicated, found.different) == (1, 1, 1, 1)
    assert len(found.where) == 4


def test_a_partial_run_may_lack_rows_but_not_hold_wrong_ones() -> None:
    partial: Snapshot = {"clients": [('{"client_key": "a"}', '{"name": "A"}')]}
    assert compare(CLEAN, partial, partial=True).total == 0
    wrong: Snapshot = {"clients": [('{"client_key": "a"}', '{"name": "Z"}')]}
    assert compare(CLEAN, wrong, partial=True).different == 1


def test_a_stopped_run_may_hold_a_record_from_its_list_while_its_detail_is_owed() -> None:
    owed = ('{"record_key": "a", "stream": "organizations"}', '{"priority": 20}')
    listed_only: Snapshot = {
        "clients": [('{"client_key": "a"}', '{"name": "A", "owner": null}')],
        "pending_details": [owed],
    }
    assert compare(CLEAN, listed_only, partial=True).total == 0
    assert compare(CLEAN, listed_only).total > 0  # a finished run owes nothing
    unowed: Snapshot = {"clients": listed_only["clients"]}
    assert compare(CLEAN, unowed, partial=True).different == 1
