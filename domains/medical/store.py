"""Store drafted impressions and route them to the radiologist worklist (one transaction, the caller's).

Each draft becomes a core.review ModelOutput (input and prompt PII-masked by core.review; PHI-masked already by
domains.medical.prompts), routed by domains/medical/review_policy.yaml to the radiologist queue, and a
MedicalDraft row keeping the study, the prompt exactly as sent, the model version and the latency.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.db.tables import User
from core.review.policies import Policy, domain_policy
from core.review.queue import record_output, route_output
from domains.medical.drafting import Draft
from domains.medical.phi import mask_phi
from domains.medical.prompts import study_text
from domains.medical.tables import MedicalDraft


def store_drafts(
    session: Session,
    *,
    user: User,
    drafts: list[Draft],
    hospital: str,
    model_name: str,
    model_version: int | None = None,
    precision: str = "",
    policy: Policy | None = None,
) -> list[MedicalDraft]:
    """Insert one MedicalDraft per draft, record it as a model output and route it; returns the rows.

    Raises:
        PermissionDenied: the user may not record model outputs (radiologist, engineer or admin may).
    """
    policy = policy or domain_policy("medical")
    rows = []
    for d in drafts:
        study = {k: mask_phi(v) for k, v in d.report.sections.items() if k != "impression"}
        parsed = {"kind": "draft", "hospital": hospital, "study_id": d.report.report_id, "labels": d.labels}
        output = record_output(
            session,
            user=user,
            domain="medical",
            input_text=study_text(d.report),
            prompt=d.prompt,
            raw_output=d.text,
            parsed=parsed,
            model_name=model_name,
            model_version=model_version,
            precision=precision,
            latency_ms=d.latency_ms,
            context_ids=d.priors,
        )
        item = route_output(session, user=user, output=output, policy=policy)
        row = MedicalDraft(
            study_id=d.report.report_id,
            hospital=hospital,
            study=study,
            prompt=d.prompt,
            draft_text=d.text,
            draft_labels=d.labels,
            model_name=model_name,
            model_version=model_version,
            precision=precision,
            latency_ms=float(d.latency_ms),
            context_ids=list(d.priors),
            output_id=output.id,
            review_item_id=item.id if item is not None else None,
            created_by=user.id,
        )
        session.add(row)
        rows.append(row)
    session.flush()
    return rows
