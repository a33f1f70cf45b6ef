"""The candidate pipeline (candidates/pipeline.py), against the graph as written in DESIGN.md, issue 12
and the pipeline module's own list of added moves, typed out again here by hand."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st

from mobility.candidates import pipeline
from mobility.candidates.models import CandidateStatus
from mobility.candidates.pipeline import ReasonRequired, TransitionNotAllowed, check_transition
from mobility.core.errors import PROBLEM_JSON, install_error_handlers

STATUSES = [
    "registered",
    "in_training",
    "trained",
    "vetting",
    "ready",
    "placed",
    "deployed",
    "returned",
    "withdrawn",
    "rejected",
]
OPEN = STATUSES[:8]
MAIN_PATH = [
    ("registered", "in_training"),
    ("in_training", "trained"),
    ("trained", "vetting"),
    ("vetting", "ready"),
    ("ready", "placed"),
    ("placed", "deployed"),
    ("deployed", "returned"),
]
ADDED = [
    ("in_training", "registered"),
    ("trained", "in_training"),
    ("registered", "vetting"),
    ("ready", "vetting"),
    ("placed", "ready"),
    ("returned", "vetting"),
]
CLOSING = [(status, closed) for status in OPEN for closed in ("withdrawn", "rejected")]
REOPENING = [("withdrawn", "registered"), ("rejected", "registered")]
EDGES = set(MAIN_PATH + ADDED + CLOSING + REOPENING)
# Reasons: closing, reopening, and the moves back or around the main path (not a further course, not
# a returned worker's next season).
NEEDS_REASON = set(CLOSING + REOPENING) | {
    ("in_training", "registered"),
    ("registered", "vetting"),
    ("ready", "vetting"),
    ("placed", "ready"),
}


def test_the_statuses_are_the_models() -> None:
    assert [status.value for status in CandidateStatus] == STATUSES


@pytest.mark.parametrize("current", STATUSES)
@pytest.mark.parametrize("target", STATUSES)
def test_every_pair(current: str, target: str) -> None:
    assert pipeline.is_allowed(current, target) == ((current, target) in EDGES)
    if (current, target) in EDGES:
        assert pipeline.needs_reason(current, target) == ((current, target) in NEEDS_REASON)


def test_allowed_targets_in_pipeline_order() -> None:
    allowed = {status: [target.value for target in pipeline.allowed_from(status)] for status in STATUSES}
    assert allowed == {
        "registered": ["in_training", "vetting", "withdrawn", "rejected"],
        "in_training": ["registered", "trained", "withdrawn", "rejected"],
        "trained": ["in_training", "vetting", "withdrawn", "rejected"],
        "vetting": ["ready", "withdrawn", "rejected"],
        "ready": ["vetting", "placed", "withdrawn", "rejected"],
        "placed": ["ready", "deployed", "withdrawn", "rejected"],
        "deployed": ["returned", "withdrawn", "rejected"],
        "returned": ["vetting", "withdrawn", "rejected"],
        "withdrawn": ["registered"],
        "rejected": ["registered"],
    }


@pytest.mark.parametrize("closed", ["withdrawn", "rejected"])
def test_a_closed_candidate_only_reopens_with_a_reason(closed: str) -> None:
    for target in STATUSES:
        if target != "registered":
            with pytest.raises(TransitionNotAllowed):
                check_transition(closed, target, "any reason")
    with pytest.raises(ReasonRequired):
        check_transition(closed, "registered")
    assert check_transition(closed, "registered", "  came back next year ") == "came back next year"


@pytest.mark.parametrize("status", STATUSES)
def test_no_status_moves_to_itself(status: str) -> None:
    with pytest.raises(TransitionNotAllowed):
        check_transition(status, status, "again")


@pytest.mark.parametrize(("current", "target"), sorted(NEEDS_REASON))
@pytest.mark.parametrize("blank", [None, "", "   \t"])
def test_reason_required(current: str, target: str, blank: str | None) -> None:
    with pytest.raises(ReasonRequired) as caught:
        check_transition(current, target, blank)
    assert caught.value.status == 422 and caught.value.extra["field"] == "reason"


@pytest.mark.parametrize(("current", "target"), sorted(EDGES - NEEDS_REASON))
def test_reason_optional_on_the_way_forward(current: str, target: str) -> None:
    assert check_transition(current, target) is None
    assert check_transition(current, target, " enrolled in FARM-101 ") == "enrolled in FARM-101"


def test_a_reason_has_a_cap() -> None:
    check_transition("ready", "withdrawn", "x" * 1000)
    with pytest.raises(pipeline.InvalidInput):
        check_transition("ready", "withdrawn", "x" * 1001)


def test_the_refusal_carries_the_allowed_targets() -> None:
    with pytest.raises(TransitionNotAllowed) as caught:
        check_transition("deployed", "ready")
    error = caught.value
    assert (error.status, error.code) == (409, "transition_not_allowed")
    assert error.extra == {
        "currentStatus": "deployed",
        "targetStatus": "ready",
        "allowedTransitions": ["returned", "withdrawn", "rejected"],
    }


async def test_the_refusal_is_a_409_problem_listing_the_allowed_targets() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/move")
    def move() -> None:
        check_transition("registered", "placed")

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        response = await client.post("/move")
    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["code"] == "transition_not_allowed"
    assert body["type"] == "about:blank#transition_not_allowed"
    assert body["allowedTransitions"] == ["in_training", "vetting", "withdrawn", "rejected"]
    assert body["currentStatus"] == "registered" and body["targetStatus"] == "placed"


ATTEMPTS = st.lists(
    st.tuples(st.sampled_from(STATUSES), st.sampled_from([None, "", "  ", "staff decision"])), max_size=60
)


@settings(max_examples=300, deadline=None)
@given(start=st.sampled_from(STATUSES), attempts=ATTEMPTS)
def test_random_attempts_never_leave_the_graph(start: str, attempts: list[tuple[str, str | None]]) -> None:
    """Whatever is tried, in any order, a candidate only ever moves along an edge of the graph, with a
    reason where one is needed; every refused attempt leaves the status as it was and says why."""
    status = start
    for target, reason in attempts:
        try:
            check_transition(status, target, reason)
        except TransitionNotAllowed as refused:
            assert (status, target) not in EDGES
            assert refused.extra["allowedTransitions"] == [s for s in STATUSES if (status, s) in EDGES]
            continue
        except ReasonRequired:
            assert (status, target) in NEEDS_REASON and not (reason or "").strip()
            continue
        assert (status, target) in EDGES
        assert (status, target) not in NEEDS_REASON or (reason or "").strip()
        status = target
    assert status in STATUSES


@settings(max_examples=200, deadline=None)
@given(walk=st.lists(st.integers(min_value=0, max_value=9), max_size=40))
def test_every_open_status_can_close_and_reopen(walk: list[int]) -> None:
    """Walking only allowed moves (chosen at random among those offered), the candidate can always be
    withdrawn or rejected while open and reopened once closed: no status is a dead end."""
    status = "registered"
    for choice in walk:
        offered = [target.value for target in pipeline.allowed_from(status)]
        assert offered, f"{status} is a dead end"
        if status in OPEN:
            assert {"withdrawn", "rejected"} <= set(offered)
        else:
            assert offered == ["registered"]
        target = offered[choice % len(offered)]
        check_transition(status, target, "reason")
        status = target
