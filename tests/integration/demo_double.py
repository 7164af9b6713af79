"""A domain double for the bootstrap seam: what a domain's `DomainPlugin.bootstrap` does, on core's real services.

It registers one exported model version (the tiny int4 export), records scored and drafted outputs, routes them
through a real routing policy, and counts its risk levels through `extras["outcome_counts"]`. Second runs skip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.auth.users import get_user
from core.db.engine import session_scope
from core.models.registry import register_version
from core.plugins import BootstrapContext, DomainPlugin
from core.review.policies import parse_policy
from core.review.queue import record_output, route_output
from core.review.tables import ModelOutput

DOMAIN = "demotest"
LEVELS = (0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5)  # two of each level; 3+ goes to the analyst queue
DRAFTS = 3
POLICY = """
name: demotest-default
version: 1
domain: demotest
rules:
  - name: high_risk
    queue: analyst
    priority: 5
    when: {field: level, op: ">=", value: 3}
  - name: draft
    queue: radiologist
    priority: 1
    when: {field: kind, op: "==", value: draft}
"""
METRICS = {"task_metric": 0.61, "task_drop_pts": 0.4, "size_mb": 1.3, "decode_tps_b1": 250.0}


def make_plugin(genai_dir: Path, calls: list[BootstrapContext]) -> DomainPlugin:
    """The double; every bootstrap call's context is appended to `calls`."""

    def bootstrap(context: BootstrapContext) -> dict[str, Any]:
        calls.append(context)
        with session_scope(context.engine) as session:
            if session.scalar(select(func.count()).where(ModelOutput.domain == DOMAIN)):
                context.progress("demo data already loaded; skipped")
                return {"scored": 0, "drafts": 0}
            admin = get_user(session, context.actor)
            context.progress("registering the demo model version")
            version = register_version(
                session,
                user=admin,
                name="demotest-risk",
                base_model=context.base_model,
                method="lora",
                precision="int4",
                path=genai_dir,
                metrics=METRICS,
            )
            policy = parse_policy(POLICY)
            context.progress("scoring and drafting the demo rows")
            rows = [{"kind": "score", "level": level} for level in LEVELS] + [{"kind": "draft"}] * DRAFTS
            for i, parsed in enumerate(rows):
                output = record_output(
                    session,
                    user=admin,
                    domain=DOMAIN,
                    input_text=f"row {i}",
                    prompt=f"prompt {i}",
                    raw_output=str(parsed),
                    parsed=parsed,
                    model_name=version.name,
                    model_version=version.version,
                    precision=version.precision,
                )
                route_output(session, user=admin, output=output, policy=policy)
        return {"scored": len(LEVELS), "drafts": DRAFTS}

    def outcome_counts(session: Session) -> dict[str, dict[str, int]]:
        levels: dict[str, int] = {}
        for parsed in session.scalars(select(ModelOutput.parsed).where(ModelOutput.domain == DOMAIN)):
            if parsed and parsed.get("kind") == "score":
                levels[str(parsed["level"])] = levels.get(str(parsed["level"]), 0) + 1
        return {"risk_level": levels}

    return DomainPlugin(name=DOMAIN, bootstrap=bootstrap, extras={"outcome_counts": outcome_counts})
