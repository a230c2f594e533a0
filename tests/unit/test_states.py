from __future__ import annotations

from itertools import pairwise

import pytest

from workflowable.states import TERMINAL, TRANSITIONS, AttemptStatus, ProcessStatus, WorkflowStatus, sources_of

S = ProcessStatus


def test_ids_and_names_are_the_documented_ones():
    assert [(s.value, s.label) for s in S] == [
        (1, "Created"), (2, "Pending"), (3, "Dispatched"), (4, "Running"),
        (5, "Paused"), (6, "Failed"), (7, "Completed"), (8, "Cancelled"),
    ]
    assert [(s.value, s.label) for s in WorkflowStatus] == [(1, "Draft"), (2, "Active"), (3, "Deactivated"), (4, "Archived")]
    assert [(s.value, s.label) for s in AttemptStatus] == [(1, "In Progress"), (2, "Success"), (3, "Failure")]


def test_every_status_has_a_row_in_the_table():
    assert set(TRANSITIONS) == set(S)


def test_terminal_states_accept_only_a_retry_of_failed():
    assert TERMINAL == {S.FAILED, S.COMPLETED, S.CANCELLED}
    assert TRANSITIONS[S.COMPLETED] == frozenset()
    assert TRANSITIONS[S.CANCELLED] == frozenset()
    assert TRANSITIONS[S.FAILED] == {S.DISPATCHED}


@pytest.mark.parametrize("status", [s for s in S if not s.is_terminal])
def test_every_live_status_can_be_cancelled(status):
    assert status.can_move_to(S.CANCELLED)


def test_paused_returns_to_any_earlier_live_state():
    for previous in (S.CREATED, S.PENDING, S.DISPATCHED, S.RUNNING):
        assert previous.can_move_to(S.PAUSED)
        assert S.PAUSED.can_move_to(previous)


def test_the_moves_of_a_run():
    path = [S.CREATED, S.DISPATCHED, S.RUNNING, S.PENDING, S.RUNNING, S.COMPLETED]
    assert all(a.can_move_to(b) for a, b in pairwise(path))
    assert not S.CREATED.can_move_to(S.RUNNING)
    assert not S.COMPLETED.can_move_to(S.RUNNING)


def test_sources_of_inverts_the_table():
    for target in S:
        assert sources_of(target) == {s for s in S if target in TRANSITIONS[s]}
    assert sources_of(S.CREATED) == {S.PAUSED}
