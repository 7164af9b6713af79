"""Sign-off services: the radiologist worklist, a draft and the signed reports to read, claiming a draft, signing,
rejecting, addenda, agreement (per radiologist, and the signed-in radiologist's own per day).

Every function takes a session and the acting user (keyword-only), checks the role itself and audits in the same
transaction; the caller commits. Only the radiologist role signs, rejects or adds addenda (an admin may not sign a
clinical report: the check is stricter than core.auth's "admin is always allowed"). A signed report is an
append-only row (core.db.append_only, plus a PostgreSQL trigger): a correction is a new MedicalAddendum row,
audited in the hash chain. Signing decides the draft's review item (approved when unchanged, edited otherwise), so
`finmed review to-training --domain medical` exports signed reports as stage-2 training records.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.audit.record import record_event
from core.auth.roles import require_role
from core.db.tables import User
from core.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from core.review.queue import DEFAULT_LEASE, claim_item, decide
from core.review.states import IN_REVIEW, PENDING
from core.review.tables import ReviewItem
from domains.medical.agreement import report_agreement, rouge_l
from domains.medical.labeler import label_report
from domains.medical.tables import MedicalAddendum, MedicalDraft, MedicalSignedReport

SIGNER = "radiologist"


def _require_radiologist(user: User | None, action: str) -> User:
    user = require_role(user, SIGNER, action=action)
    if user.role != SIGNER:
        raise PermissionDenied(f"{action}: only the radiologist role may do this, not '{user.role}' ({user.username})")
    return user


def _draft(session: Session, draft_id: int) -> MedicalDraft:
    draft = session.get(MedicalDraft, draft_id)
    if draft is None:
        raise NotFoundError(f"no medical draft {draft_id}")
    return draft


@dataclass(frozen=True)
class WorklistEntry:
    """One open draft on the worklist, with its review item's state and claim holder."""

    draft: MedicalDraft
    item: ReviewItem


def worklist(session: Session, *, user: User, hospital: str | None = None, limit: int = 200) -> list[WorklistEntry]:
    """Open drafts (pending or claimed) of the radiologist queue, oldest first, per hospital when given."""
    require_role(user, SIGNER, "compliance", action="read the radiologist worklist")
    query = (
        select(MedicalDraft, ReviewItem)
        .join(ReviewItem, ReviewItem.id == MedicalDraft.review_item_id)
        .where(MedicalDraft.state == "drafted", ReviewItem.state.in_((PENDING, IN_REVIEW)))
        .where(ReviewItem.queue == "radiologist")
        .order_by(MedicalDraft.created_at, MedicalDraft.id)
        .limit(limit)
    )
    if hospital:
        query = query.where(MedicalDraft.hospital == hospital)
    return [WorklistEntry(d, i) for d, i in session.execute(query)]


def get_draft(session: Session, *, user: User, draft_id: int) -> MedicalDraft:
    """One draft with its study, for the study view.

    Raises:
        PermissionDenied: the user is not a radiologist or compliance reviewer; NotFoundError: no such draft.
    """
    require_role(user, SIGNER, "compliance", action="read a medical draft")
    return _draft(session, draft_id)


def signed_reports(
    session: Session, *, user: User, hospital: str | None = None, limit: int = 50
) -> list[tuple[MedicalSignedReport, int]]:
    """The latest signed reports, newest first, each with its number of addenda."""
    require_role(user, SIGNER, "compliance", action="read signed reports")
    count = (
        select(func.count(MedicalAddendum.id))
        .where(MedicalAddendum.signed_report_id == MedicalSignedReport.id)
        .scalar_subquery()
    )
    query = select(MedicalSignedReport, count).order_by(MedicalSignedReport.id.desc()).limit(limit)
    if hospital:
        query = query.where(MedicalSignedReport.hospital == hospital)
    return [(signed, int(n)) for signed, n in session.execute(query)]


def my_agreement_by_day(session: Session, *, user: User) -> list[dict]:
    """The signed-in radiologist's own draft agreement per day (UTC) of signing, oldest first: signed reports,
    share edited, mean ROUGE-L and mean finding agreement of draft vs signed."""
    _require_radiologist(user, "read personal agreement")
    query = select(MedicalSignedReport).where(MedicalSignedReport.signed_by == user.id)
    days: dict[str, list[MedicalSignedReport]] = defaultdict(list)
    for signed in session.scalars(query.order_by(MedicalSignedReport.signed_at)):
        days[signed.signed_at.strftime("%Y-%m-%d")].append(signed)
    return [{"day": day, **_agreement(rows)} for day, rows in days.items()]


def _agreement(rows: list[MedicalSignedReport]) -> dict:
    agreed = [r.finding_agreement for r in rows if r.finding_agreement is not None]
    return {
        "signed": len(rows),
        "edited_share": sum(r.edited for r in rows) / len(rows),
        "rouge_l": sum(r.rouge_l for r in rows) / len(rows),
        "finding_agreement": sum(agreed) / len(agreed) if agreed else None,
    }


def claim_draft(session: Session, *, user: User, draft_id: int, lease: timedelta = DEFAULT_LEASE) -> MedicalDraft:
    """Claim the draft's review item for `user` (a radiologist), so no one else works it meanwhile."""
    _require_radiologist(user, f"claim medical draft {draft_id}")
    draft = _draft(session, draft_id)
    if draft.review_item_id is None:
        raise ConflictError(f"medical draft {draft_id} was not routed to the worklist")
    item = session.get(ReviewItem, draft.review_item_id)
    if item is not None and item.state == IN_REVIEW and item.claimed_by == user.id:
        return draft
    claim_item(session, user=user, item_id=draft.review_item_id, lease=lease)
    return draft


def sign_report(session: Session, *, user: User, draft_id: int, text: str | None = None) -> MedicalSignedReport:
    """Sign the draft (as drafted, or with the radiologist's edited `text`); returns the immutable signed report.

    Raises:
        PermissionDenied: the user is not a radiologist.
        ConflictError: the draft is already signed or rejected, or not claimed by this user.
        ValidationError: empty text.
    """
    _require_radiologist(user, f"sign medical draft {draft_id}")
    draft = _draft(session, draft_id)
    if draft.state != "drafted":
        raise ConflictError(f"medical draft {draft_id} is already {draft.state}: add an addendum to its signed report")
    final = (draft.draft_text if text is None else text).strip()
    if not final:
        raise ValidationError(f"medical draft {draft_id}: the signed impression is empty")
    edited = final != draft.draft_text.strip()
    if draft.review_item_id is not None:
        claim_draft(session, user=user, draft_id=draft_id)
        decide(session, user=user, item_id=draft.review_item_id, decision="edited" if edited else "approved",
               edited_text=final if edited else None)  # fmt: skip
    labels = label_report(final)
    signed = MedicalSignedReport(
        draft_id=draft.id,
        study_id=draft.study_id,
        hospital=draft.hospital,
        signed_text=final,
        signed_labels=labels,
        edited=edited,
        rouge_l=rouge_l(draft.draft_text, final),
        finding_agreement=report_agreement(draft.draft_labels, labels),
        signed_by=user.id,
    )
    session.add(signed)
    draft.state = "signed"
    session.flush()
    record_event(
        session,
        actor=user.username,
        action="medical.report_signed",
        subject_type="medical_signed_report",
        subject_id=str(signed.id),
        payload={"draft": draft.id, "edited": edited, "rouge_l": round(signed.rouge_l, 4),
                 "finding_agreement": signed.finding_agreement},
    )  # fmt: skip
    return signed


def reject_draft(session: Session, *, user: User, draft_id: int, reason: str) -> MedicalDraft:
    """Reject a draft (the radiologist writes the report without it); a reason is required."""
    _require_radiologist(user, f"reject medical draft {draft_id}")
    draft = _draft(session, draft_id)
    if draft.state != "drafted":
        raise ConflictError(f"medical draft {draft_id} is already {draft.state}")
    if not reason.strip():
        raise ValidationError(f"medical draft {draft_id}: a reason is required to reject it")
    if draft.review_item_id is not None:
        claim_draft(session, user=user, draft_id=draft_id)
        decide(session, user=user, item_id=draft.review_item_id, decision="rejected", reason=reason)
    draft.state = "rejected"
    session.flush()
    record_event(session, actor=user.username, action="medical.draft_rejected", subject_type="medical_draft",
                 subject_id=str(draft.id), payload={"reason": reason})  # fmt: skip
    return draft


def add_addendum(session: Session, *, user: User, signed_report_id: int, text: str) -> MedicalAddendum:
    """Append a correction to a signed report (a new row; the signed report never changes)."""
    _require_radiologist(user, f"add an addendum to signed report {signed_report_id}")
    signed = session.get(MedicalSignedReport, signed_report_id)
    if signed is None:
        raise NotFoundError(f"no signed medical report {signed_report_id}")
    if not text.strip():
        raise ValidationError(f"signed report {signed_report_id}: the addendum is empty")
    addendum = MedicalAddendum(signed_report_id=signed.id, text=text.strip(), author_id=user.id)
    session.add(addendum)
    session.flush()
    record_event(session, actor=user.username, action="medical.addendum_added", subject_type="medical_addendum",
                 subject_id=str(addendum.id), payload={"signed_report": signed.id, "text": addendum.text})  # fmt: skip
    return addendum


def addenda(session: Session, *, user: User, signed_report_id: int) -> list[MedicalAddendum]:
    """The addenda of a signed report, oldest first."""
    require_role(user, SIGNER, "compliance", action="read addenda")
    query = select(MedicalAddendum).where(MedicalAddendum.signed_report_id == signed_report_id)
    return list(session.scalars(query.order_by(MedicalAddendum.id)))


def agreement_by_radiologist(session: Session, *, user: User, hospital: str | None = None) -> dict[str, dict]:
    """Per radiologist: signed reports, share edited, mean ROUGE-L and mean finding agreement of draft vs signed."""
    require_role(user, SIGNER, "compliance", "engineer", action="read draft agreement")
    query = select(MedicalSignedReport, User.username).join(User, User.id == MedicalSignedReport.signed_by)
    if hospital:
        query = query.where(MedicalSignedReport.hospital == hospital)
    groups: dict[str, list[MedicalSignedReport]] = defaultdict(list)
    for signed, name in session.execute(query):
        groups[name].append(signed)
    return {name: _agreement(rows) for name, rows in sorted(groups.items())}
