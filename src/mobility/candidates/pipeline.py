"""The candidate pipeline: which status may follow which, and when a reason must be given.

The one place the rule lives. The candidates service (the manual endpoint) and the domains that drive
the pipeline by events (training: enrollment and certificate; vetting; placements) all call
`check_transition` before they change a candidate's status. Pure: no database, no clock.

The main path (DESIGN.md):

    registered -> in_training -> trained -> vetting -> ready -> placed -> deployed -> returned

Where DESIGN.md and issue 12 are silent, these moves are added, each for a real case:

    in_training -> registered   left or failed the course, still a candidate          (reason)
    trained     -> in_training  enrolled in a further course
    registered  -> vetting      no training required: prior learning recognised       (reason)
    ready       -> vetting      a check lapsed or must be redone while in the pool    (reason)
    placed      -> ready        the placement fell through before departure           (reason)
    returned    -> vetting      back for another season: re-vetted, never re-registered (one person,
                                one record; the duplicate rules would refuse a second one)

Every status but the two closed ones is open: from any open status a candidate may be `withdrawn`
(their choice) or `rejected` (the institute's decision), with a reason. The closed statuses are left
only by reopening, to `registered`, with a reason: a withdrawn or rejected person who comes back keeps
their record and history (a new record would be a duplicate). Nothing else leaves them.

A status never "moves" to itself: that is refused like any other move not listed, so a caller whose
event may be repeated checks the current status first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from mobility.candidates.models import CandidateStatus
from mobility.core.errors import Conflict, InvalidInput

S = CandidateStatus

# The pipeline in order: the order in which allowed targets are listed to a caller.
ORDER: tuple[CandidateStatus, ...] = tuple(CandidateStatus)
CLOSED: frozenset[CandidateStatus] = frozenset({S.withdrawn, S.rejected})
OPEN: frozenset[CandidateStatus] = frozenset(ORDER) - CLOSED

# Moves along or around the main path (the closing and reopening moves are added below).
_MOVES: dict[CandidateStatus, frozenset[CandidateStatus]] = {
    S.registered: frozenset({S.in_training, S.vetting}),
    S.in_training: frozenset({S.trained, S.registered}),
    S.trained: frozenset({S.vetting, S.in_training}),
    S.vetting: frozenset({S.ready}),
    S.ready: frozenset({S.placed, S.vetting}),
    S.placed: frozenset({S.deployed, S.ready}),
    S.deployed: frozenset({S.returned}),
    S.returned: frozenset({S.vetting}),
}

TRANSITIONS: Mapping[CandidateStatus, frozenset[CandidateStatus]] = {
    status: (_MOVES[status] | CLOSED) if status in OPEN else frozenset({S.registered}) for status in ORDER
}

# Moves that need a reason: closing, reopening, and every step back or around the main path.
_REASONED_MOVES = frozenset(
    {
        (S.in_training, S.registered),
        (S.registered, S.vetting),
        (S.ready, S.vetting),
        (S.placed, S.ready),
    }
)

MAX_REASON = 1000


class TransitionNotAllowed(Conflict):
    """409: the move is not in the pipeline. Carries where the candidate is and where they may go."""

    code, title = "transition_not_allowed", "Status change not allowed"

    def __init__(self, current: CandidateStatus, target: CandidateStatus) -> None:
        allowed = allowed_from(current)
        super().__init__(
            f"A candidate cannot move from {current.value} to {target.value}; allowed from "
            f"{current.value}: {', '.join(status.value for status in allowed) or 'nothing'}.",
            currentStatus=current.value,
            targetStatus=target.value,
            allowedTransitions=[status.value for status in allowed],
        )
        self.current, self.target, self.allowed = current, target, allowed


class ReasonRequired(InvalidInput):
    """422: the move is allowed but needs a reason, and none was given."""

    code, title = "reason_required", "A reason is required"

    def __init__(self, current: CandidateStatus, target: CandidateStatus) -> None:
        super().__init__(
            f"Moving a candidate from {current.value} to {target.value} needs a reason.",
            field="reason",
            currentStatus=current.value,
            targetStatus=target.value,
        )


def _ordered(statuses: Iterable[CandidateStatus]) -> tuple[CandidateStatus, ...]:
    chosen = set(statuses)
    return tuple(status for status in ORDER if status in chosen)


def allowed_from(status: CandidateStatus | str) -> tuple[CandidateStatus, ...]:
    """Where a candidate in `status` may move, in pipeline order."""
    return _ordered(TRANSITIONS[CandidateStatus(status)])


def is_allowed(current: CandidateStatus | str, target: CandidateStatus | str) -> bool:
    return CandidateStatus(target) in TRANSITIONS[CandidateStatus(current)]


def needs_reason(current: CandidateStatus | str, target: CandidateStatus | str) -> bool:
    """Whether the move (assumed allowed) needs a reason: closing, reopening, going back."""
    current, target = CandidateStatus(current), CandidateStatus(target)
    return target in CLOSED or current in CLOSED or (current, target) in _REASONED_MOVES


def check_transition(
    current: CandidateStatus | str, target: CandidateStatus | str, reason: str | None = None
) -> str | None:
    """The move's reason, tidied (None when none was given and none is needed), or an error:
    TransitionNotAllowed (409, listing the allowed targets) or ReasonRequired (422). A reason longer
    than MAX_REASON characters is refused (422) too."""
    current, target = CandidateStatus(current), CandidateStatus(target)
    if not is_allowed(current, target):
        raise TransitionNotAllowed(current, target)
    reason = reason.strip() if reason is not None else None
    if not reason:
        if needs_reason(current, target):
            raise ReasonRequired(current, target)
        return None
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"A reason has at most {MAX_REASON} characters.", field="reason")
    return reason
