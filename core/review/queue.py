"""Review queue services: store model outputs, route them by policy, claim items safely, record decisions.

Every function takes a session and the acting user (keyword-only), checks the role, writes an audit event in the
same transaction and leaves committing to the caller (CLI, API and app pages commit once per call).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, false, or_, select
from sqlalchemy.orm import Session

from core.audit.record import record_event
from core.auth.roles import require_role
from core.data.pii import mask_pii
from core.db.base import utcnow
from core.db.tables import User
from core.db.write_lock import begin_write
from core.errors import ConflictError, NotFoundError, ValidationError
from core.review.policies import Policy, route
from core.review.states import (
    DECISION_STATES,
    EDITED,
    ESCALATED,
    IN_REVIEW,
    PENDING,
    QUEUE_ROLES,
    SENIOR_ROLES,
    check_transition,
    roles_for,
)
from core.review.tables import ModelOutput, ReviewDecision, ReviewItem, RoutingPolicy

DEFAULT_LEASE = timedelta(minutes=15)
PRODUCER_ROLES = ("analyst", "radiologist", "engineer")
REVIEWER_ROLES = ("analyst", "radiologist", "compliance")
REASON_REQUIRED = ("rejected", "escalated")


def as_utc(value: datetime) -> datetime:
    """`value` as an aware UTC datetime (SQLite returns naive UTC values)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def record_output(
    session: Session,
    *,
    user: User,
    domain: str,
    input_text: str,
    prompt: str,
    raw_output: str,
    parsed: Mapping[str, Any] | None,
    model_name: str,
    model_version: int | None = None,
    precision: str = "",
    latency_ms: float = 0.0,
    context_ids: Iterable[Any] = (),
    system_prompt: str = "",
    parse_error: str = "",
) -> ModelOutput:
    """Store one model call that reaches a person; input and prompt are PII-masked before they are written."""
    require_role(user, *PRODUCER_ROLES, action="record a model output")
    output = ModelOutput(
        domain=domain,
        input_text=mask_pii(input_text),
        system_prompt=mask_pii(system_prompt),
        prompt=mask_pii(prompt),
        raw_output=raw_output,
        parsed=dict(parsed) if parsed is not None else None,
        parse_error=parse_error,
        model_name=model_name,
        model_version=model_version,
        precision=precision,
        latency_ms=float(latency_ms),
        context_ids=list(context_ids),
        created_by=user.id,
    )
    session.add(output)
    session.flush()
    record_event(
        session,
        actor=user.username,
        action="output.created",
        subject_type="model_output",
        subject_id=str(output.id),
        payload={"domain": domain, "model": model_name, "version": model_version, "parsed": parsed is not None},
    )
    return output


def register_policy(session: Session, *, user: User, policy: Policy) -> RoutingPolicy:
    """The stored row of `policy`, stored (and audited as a policy change) the first time it is seen.

    Raises:
        ConflictError: the same name and version were stored before with different content.
    """
    row = session.scalar(
        select(RoutingPolicy).where(RoutingPolicy.name == policy.name, RoutingPolicy.version == policy.version)
    )
    if row is not None:
        if row.content_hash != policy.content_hash:
            raise ConflictError(
                f"routing policy {policy.name} version {policy.version} ({policy.source}) differs from the one stored "
                f"(hash {row.content_hash[:12]}): raise `version` in the file"
            )
        return row
    row = RoutingPolicy(
        name=policy.name,
        version=policy.version,
        domain=policy.domain,
        content_hash=policy.content_hash,
        content=policy.content,
    )
    session.add(row)
    session.flush()
    record_event(
        session,
        actor=user.username,
        action="policy.changed",
        subject_type="routing_policy",
        subject_id=f"{policy.name}@{policy.version}",
        payload={"hash": policy.content_hash, "domain": policy.domain, "source": policy.source},
    )
    return row


def route_output(session: Session, *, user: User, output: ModelOutput, policy: Policy) -> ReviewItem | None:
    """Queue `output` for review when `policy` routes it; None when no rule matched."""
    require_role(user, *PRODUCER_ROLES, action="route a model output")
    if policy.domain != output.domain:
        raise ValidationError(
            f"policy {policy.name} is for domain '{policy.domain}', output {output.id} is '{output.domain}'"
        )
    register_policy(session, user=user, policy=policy)
    routed = route(policy, parsed=output.parsed, output_id=output.id)
    if routed is None:
        return None
    item = ReviewItem(
        output_id=output.id,
        domain=output.domain,
        queue=routed.queue,
        priority=routed.priority,
        reasons=list(routed.reasons),
        policy_name=policy.name,
        policy_version=policy.version,
        policy_hash=policy.content_hash,
    )
    session.add(item)
    session.flush()
    record_event(
        session,
        actor=user.username,
        action="review.routed",
        subject_type="review_item",
        subject_id=str(item.id),
        payload={
            "output": output.id,
            "queue": item.queue,
            "reasons": item.reasons,
            "policy": f"{policy.name}@{policy.version}",
        },
    )
    return item


def _user_queues(user: User) -> list[str]:
    return [q for q, roles in QUEUE_ROLES.items() if user.role == "admin" or user.role in roles]


def _claimable(user: User, now: datetime):  # type: ignore[no-untyped-def]
    """SQL condition: items `user` may claim now (open items of its queues, escalations for seniors, lapsed claims)."""
    expired = and_(ReviewItem.state == IN_REVIEW, ReviewItem.lease_expires_at < now)
    conditions = []
    queues = _user_queues(user)
    if queues:
        conditions.append(
            and_(
                ReviewItem.queue.in_(queues),
                or_(ReviewItem.state == PENDING, and_(expired, ReviewItem.claimed_from == PENDING)),
            )
        )
    if user.role in SENIOR_ROLES:
        conditions.append(or_(ReviewItem.state == ESCALATED, and_(expired, ReviewItem.claimed_from == ESCALATED)))
    return or_(*conditions) if conditions else false()


def _take(session: Session, item: ReviewItem, *, user: User, lease: timedelta, now: datetime) -> ReviewItem:
    lapsed_holder = item.claimed_by if item.state == IN_REVIEW else None
    source = item.claimed_from if item.state == IN_REVIEW else item.state
    item.claimed_from = source
    item.state = IN_REVIEW
    item.claimed_by = user.id
    item.claimed_at = now
    item.lease_expires_at = now + lease
    session.add(ReviewDecision(item_id=item.id, from_state=source or PENDING, to_state=IN_REVIEW, actor_id=user.id))
    session.flush()
    record_event(
        session,
        actor=user.username,
        action="review.claimed",
        subject_type="review_item",
        subject_id=str(item.id),
        payload={"from": source, "lease_s": int(lease.total_seconds()), "lapsed_claim_of": lapsed_holder},
    )
    return item


def claim_next(
    session: Session,
    *,
    user: User,
    domain: str | None = None,
    lease: timedelta = DEFAULT_LEASE,
    now: datetime | None = None,
) -> ReviewItem | None:
    """Claim the highest-priority open item `user` may work on, or None when the queue is empty.

    Safe under concurrency: PostgreSQL skips rows other transactions have locked (`FOR UPDATE SKIP LOCKED`);
    SQLite takes the write lock first (`BEGIN IMMEDIATE`). A claim whose lease ran out counts as open again, so an
    item held by a reviewer whose session died returns to the queue. The caller commits.
    """
    require_role(user, *REVIEWER_ROLES, action="claim a review item")
    now = now or utcnow()
    begin_write(session)
    query = select(ReviewItem).where(_claimable(user, now))
    if domain is not None:
        query = query.where(ReviewItem.domain == domain)
    query = query.order_by(ReviewItem.priority.desc(), ReviewItem.id).limit(1)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    item = session.scalar(query)
    if item is None:
        return None
    return _take(session, item, user=user, lease=lease, now=now)


def _locked_item(session: Session, item_id: int) -> ReviewItem:
    begin_write(session)
    query = select(ReviewItem).where(ReviewItem.id == item_id).execution_options(populate_existing=True)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    item = session.scalar(query)
    if item is None:
        raise NotFoundError(f"no review item {item_id}")
    return item


def claim_item(
    session: Session, *, user: User, item_id: int, lease: timedelta = DEFAULT_LEASE, now: datetime | None = None
) -> ReviewItem:
    """Claim one named item (from the queue table of the app or `finmed review claim ID`).

    Raises:
        ConflictError: the item is not open (decided, or claimed by someone whose lease has not run out).
        PermissionDenied: the user's role may not work this item's queue.
    """
    require_role(user, *REVIEWER_ROLES, action="claim a review item")
    now = now or utcnow()
    item = _locked_item(session, item_id)
    lapsed = item.state == IN_REVIEW and item.lease_expires_at is not None and as_utc(item.lease_expires_at) < now
    if lapsed:
        require_role(user, *roles_for(item.queue, item.claimed_from or PENDING), action=f"claim review item {item.id}")
        return _take(session, item, user=user, lease=lease, now=now)
    if item.state == IN_REVIEW:
        raise ConflictError(
            f"review item {item.id} is claimed until {as_utc(item.lease_expires_at or now):%Y-%m-%d %H:%M:%S} UTC "
            "by another reviewer: claim another item"
        )
    check_transition(item.id, item.state, IN_REVIEW)
    require_role(user, *roles_for(item.queue, item.state), action=f"claim review item {item.id}")
    return _take(session, item, user=user, lease=lease, now=now)


def unified_diff(model_text: str, edited_text: str, *, item_id: int) -> str:
    """Unified diff from the model's text to the reviewer's edit."""
    return "".join(
        difflib.unified_diff(
            model_text.splitlines(keepends=True),
            edited_text.splitlines(keepends=True),
            fromfile=f"item-{item_id}/model",
            tofile=f"item-{item_id}/edited",
        )
    )


def decide(
    session: Session,
    *,
    user: User,
    item_id: int,
    decision: str,
    reason: str = "",
    edited_text: str | None = None,
    now: datetime | None = None,
) -> ReviewItem:
    """Record `decision` (approved | rejected | edited | escalated) on an item `user` holds a live claim on.

    Raises:
        ValidationError: unknown decision, missing reason (reject, escalate) or edited text (edit).
        ConflictError: the transition does not exist, or the claim belongs to someone else or has lapsed.
        PermissionDenied: the role may not decide this queue (e.g. an analyst signing a medical report).
    """
    if decision not in DECISION_STATES:
        raise ValidationError(f"unknown decision '{decision}': choose one of {', '.join(DECISION_STATES)}")
    require_role(user, *REVIEWER_ROLES, action="decide a review item")
    now = now or utcnow()
    item = _locked_item(session, item_id)
    check_transition(item.id, item.state, decision)
    require_role(user, *roles_for(item.queue, item.claimed_from or PENDING), action=f"decide review item {item.id}")
    if item.claimed_by != user.id:
        raise ConflictError(f"review item {item.id} is claimed by another reviewer: claim it before deciding")
    if item.lease_expires_at is not None and as_utc(item.lease_expires_at) < now:
        raise ConflictError(f"your claim on review item {item.id} expired: claim it again")
    if decision in REASON_REQUIRED and not reason.strip():
        raise ValidationError(f"review item {item.id}: a reason is required to mark it {decision}")
    diff = None
    if decision == EDITED:
        if edited_text is None or not edited_text.strip():
            raise ValidationError(f"review item {item.id}: an edit needs the edited text")
        output = session.get(ModelOutput, item.output_id)
        assert output is not None  # foreign key
        diff = unified_diff(output.raw_output, edited_text, item_id=item.id)
    elif edited_text is not None:
        raise ValidationError(f"review item {item.id}: edited text is only accepted with the decision 'edited'")
    source = item.state
    item.state = decision
    item.decided_by = user.id
    item.decided_at = now
    item.decision_reason = reason
    item.edited_text = edited_text if decision == EDITED else None
    item.diff = diff
    item.claimed_by = None
    item.claimed_at = None
    item.lease_expires_at = None
    session.add(
        ReviewDecision(
            item_id=item.id,
            from_state=source,
            to_state=decision,
            actor_id=user.id,
            reason=reason,
            edited_text=item.edited_text,
            diff=diff,
        )
    )
    session.flush()
    record_event(
        session,
        actor=user.username,
        action="review.decided",
        subject_type="review_item",
        subject_id=str(item.id),
        payload={"decision": decision, "reason": reason, "diff": diff},
    )
    return item


def move(
    session: Session,
    *,
    user: User,
    item_id: int,
    to: str,
    reason: str = "",
    edited_text: str | None = None,
    lease: timedelta = DEFAULT_LEASE,
    now: datetime | None = None,
) -> ReviewItem:
    """Move an item to state `to` through the one service that makes that transition (claim or decide).

    Raises:
        ConflictError: the state machine has no such transition.
    """
    if to == IN_REVIEW:
        return claim_item(session, user=user, item_id=item_id, lease=lease, now=now)
    if to in DECISION_STATES:
        return decide(session, user=user, item_id=item_id, decision=to, reason=reason, edited_text=edited_text, now=now)
    item = session.get(ReviewItem, item_id)
    if item is None:
        raise NotFoundError(f"no review item {item_id}")
    check_transition(item.id, item.state, to)
    raise ConflictError(f"review item {item.id}: no service moves an item to '{to}'")  # unreachable by TRANSITIONS


def list_items(
    session: Session,
    *,
    user: User,
    domain: str | None = None,
    states: Iterable[str] | None = None,
    limit: int = 100,
) -> list[tuple[ReviewItem, ModelOutput]]:
    """Items of the queues `user` works (compliance and admin see every queue), newest first, with their outputs."""
    require_role(user, *REVIEWER_ROLES, action="list the review queue")
    query = select(ReviewItem, ModelOutput).join(ModelOutput, ModelOutput.id == ReviewItem.output_id)
    if user.role not in SENIOR_ROLES:
        query = query.where(ReviewItem.queue.in_(_user_queues(user)))
    if domain is not None:
        query = query.where(ReviewItem.domain == domain)
    if states is not None:
        query = query.where(ReviewItem.state.in_(list(states)))
    rows = session.execute(query.order_by(ReviewItem.priority.desc(), ReviewItem.id.desc()).limit(limit)).all()
    return [(item, output) for item, output in rows]
