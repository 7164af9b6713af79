"""Review routing of stored finance assessments through the review queue and the finance policy.

Every assessment the LLM adjudicated is a model output, and every assessment at or above the policy's risk
threshold needs an analyst whoever produced it: each such row is recorded as a ModelOutput (PII-masked by
core.review) and routed by domains/finance/review_policy.yaml — unparseable answers and high risk to the analyst
queue, numeric/LLM disagreement too, and a sample of low-risk outputs to compliance.

The recorded output carries the exact prompt the LLM was sent (none when only the numeric screen spoke), the
registered LLM version (model name, version and precision of the registry entry) and, in its parsed fields, the
numeric model and calibration versions and the level's promised fraud-rate band.
"""

from __future__ import annotations

import json

import pandas as pd
from sqlalchemy.orm import Session

from core.db.tables import User
from core.review.policies import Policy, domain_policy
from core.review.queue import record_output, route_output
from domains.finance.parser import parse_risk
from domains.finance.store import opt
from domains.finance.versions import Versions

INPUT_FIELDS = ("transaction_id", "account_id", "timestamp", "amount", "currency", "merchant_id", "channel", "country")


def route_assessments(
    session: Session,
    *,
    user: User,
    scored: pd.DataFrame,
    rows: pd.DataFrame,
    versions: Versions,
    policy: Policy | None = None,
    bands: list[tuple[float, float]] | None = None,
) -> dict[str, int]:
    """Record and route the assessments that need a person; returns counts {"recorded", "queued"}.

    Args:
        scored: assessments (pipeline.ASSESSMENT_COLUMNS).
        rows: the same transactions with canonical fields and features, aligned with `scored`.
        versions: what produced the assessments.
        policy: the finance routing policy (default: the plugin's `default`).
        bands: the promised fraud-rate band (low, high) per level, when the levels are calibrated.
    """
    policy = policy or domain_policy("finance")
    threshold = int(policy.params.get("risk_threshold", 3))
    need = (scored["adjudicated"].to_numpy(dtype=bool)) | (scored["risk_level"].to_numpy() >= threshold)
    recorded = queued = 0
    registered = versions.llm_registered
    for pos in need.nonzero()[0]:
        rec = scored.iloc[pos]
        row = rows.iloc[pos].to_dict()
        fields = {k: opt(row.get(k)) for k in INPUT_FIELDS}
        input_text = json.dumps({**fields, "description": row.get("description") or ""}, default=str)
        answer = opt(rec["llm_answer"])
        reasons = [r for r in str(rec["reasons"]).split(",") if r]
        if answer is not None:
            parsed_answer = parse_risk(str(answer))  # again, for its error text: the pipeline keeps only parse_ok
            prompt = str(opt(rec.get("prompt")) or "")  # the exact text the LLM was sent
        else:
            parsed_answer, prompt = None, ""
            answer = f"numeric risk level {int(rec['numeric_level'])} (score {float(rec['numeric_score']):.4f})"
        level = int(rec["risk_level"])
        parsed = None
        if parsed_answer is None or parsed_answer.ok:
            parsed = {
                "risk_level": int(rec["risk_level"]),
                "numeric_score": float(rec["numeric_score"]),
                "fused_score": float(rec["fused_score"]),
                "llm_level": None if opt(rec["llm_level"]) is None else int(rec["llm_level"]),
                "reasons": reasons,
                "transaction_id": str(rec["transaction_id"]),
                "numeric_version": versions.numeric,
                "llm_version": versions.llm if answer is not None and opt(rec["llm_answer"]) is not None else None,
                "calibration_version": versions.calibration,
                "band": list(bands[level]) if bands else None,
            }
        output = record_output(
            session,
            user=user,
            domain="finance",
            input_text=input_text,
            prompt=prompt,
            raw_output=str(answer),
            parsed=parsed,
            model_name=(registered.name if registered is not None and prompt else versions.label())[:100],
            model_version=registered.version if registered is not None and prompt else None,
            precision=registered.precision if registered is not None and prompt else "",
            parse_error="" if parsed is not None else parsed_answer.error if parsed_answer else "",
        )
        recorded += 1
        queued += route_output(session, user=user, output=output, policy=policy) is not None
    return {"recorded": recorded, "queued": queued}
