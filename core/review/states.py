"""The review item state machine: which transitions exist and who may make them."""

from __future__ import annotations

from core.errors import ConflictError

PENDING, IN_REVIEW, APPROVED, REJECTED, EDITED, ESCALATED = (
    "pending",
    "in_review",
    "approved",
    "rejected",
    "edited",
    "escalated",
)
DECISION_STATES = (APPROVED, REJECTED, EDITED, ESCALATED)
FINAL_STATES = (APPROVED, REJECTED, EDITED)
# Claimable states: a claim moves an item from one of these to in_review; an expired claim returns it there.
CLAIMABLE = (PENDING, ESCALATED)

TRANSITIONS: dict[str, tuple[str, ...]] = {
    PENDING: (IN_REVIEW,),
    IN_REVIEW: DECISION_STATES,
    ESCALATED: (IN_REVIEW,),
    APPROVED: (),
    REJECTED: (),
    EDITED: (),
}

# Roles that may work items of each queue (admin always may); escalated items need a senior role.
QUEUE_ROLES: dict[str, tuple[str, ...]] = {
    "analyst": ("analyst", "compliance"),
    "radiologist": ("radiologist",),
    "compliance": ("compliance",),
}
SENIOR_ROLES = ("compliance", "admin")


def check_transition(item_id: int, current: str, target: str) -> None:
    """Refuse a transition the state machine does not have.

    Raises:
        ConflictError: naming the item, both states and the transitions that are allowed from `current`.
    """
    allowed = TRANSITIONS.get(current, ())
    if target not in allowed:
        options = ", ".join(allowed) if allowed else "none: the decision is final"
        raise ConflictError(f"review item {item_id}: cannot go from '{current}' to '{target}' (allowed: {options})")


def roles_for(queue: str, state: str) -> tuple[str, ...]:
    """Roles that may claim or decide an item of `queue` that is in (or was claimed from) `state`."""
    if state == ESCALATED:
        return SENIOR_ROLES
    return QUEUE_ROLES[queue]
