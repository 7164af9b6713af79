"""Read-only views of the review queue for the compliance page: one claimed item with its output, and decision
rates (approval, override) by model version and routing policy."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.auth.roles import require_role
from core.db.tables import User
from core.review.queue import REVIEWER_ROLES
from core.review.states import APPROVED, EDITED, FINAL_STATES, IN_REVIEW, REJECTED
from core.review.tables import ModelOutput, ReviewItem

AUDITOR_ROLES = ("compliance",)  # admin is always allowed


def claimed_item(session: Session, *, user: User, item_id: int) -> tuple[ReviewItem, ModelOutput] | None:
    """The item and its output when `user` holds the claim on it now, else None (decided, lapsed, someone else's)."""
    require_role(user, *REVIEWER_ROLES, action="open a review item")
    row = session.execute(
        select(ReviewItem, ModelOutput)
        .join(ModelOutput, ModelOutput.id == ReviewItem.output_id)
        .where(ReviewItem.id == item_id)
    ).first()
    if row is None:
        return None
    item, output = row
    if item.state != IN_REVIEW or item.claimed_by != user.id:
        return None
    return item, output


def decision_rates(session: Session, *, user: User, domain: str | None = None) -> list[dict[str, Any]]:
    """Per model version and policy: decided items, approval rate, override rate (rejected or edited), escalations.

    Rows are sorted by model, version and policy; rates are shares of final decisions (approved, rejected, edited).
    """
    require_role(user, *AUDITOR_ROLES, action="read review decision rates")
    query = (
        select(
            ModelOutput.model_name,
            ModelOutput.model_version,
            ReviewItem.policy_name,
            ReviewItem.policy_version,
            ReviewItem.state,
            func.count(),
        )
        .join(ModelOutput, ModelOutput.id == ReviewItem.output_id)
        .group_by(
            ModelOutput.model_name,
            ModelOutput.model_version,
            ReviewItem.policy_name,
            ReviewItem.policy_version,
            ReviewItem.state,
        )
    )
    if domain is not None:
        query = query.where(ReviewItem.domain == domain)
    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for model, version, policy, policy_version, state, n in session.execute(query):
        key = (f"{model}@{version}" if version is not None else model, f"{policy}@{policy_version}")
        counts[key][state] = int(n)
    rows = []
    for (model, policy), states in sorted(counts.items()):
        final = sum(states.get(s, 0) for s in FINAL_STATES)
        rows.append(
            {
                "model": model,
                "policy": policy,
                "items": sum(states.values()),
                "decided": final,
                "approval_rate": states.get(APPROVED, 0) / final if final else None,
                "override_rate": (states.get(REJECTED, 0) + states.get(EDITED, 0)) / final if final else None,
                "escalated_open": states.get("escalated", 0),
            }
        )
    return rows
