"""The finance scoring service: one `score_batch` and one `store_and_route` behind every face (the `finmed finance
score` command, POST /v1/finance/score and the Risk scoring page), so the same file gets the same assessments
wherever it is scored.

score_batch: map and validate the rows (ingest: only unscorable rows are rejected, odd optional fields are
flagged and counted), compute causal features, decide the LLM stage from the fusion learned with the model (skip
it when the LLM showed no gain, unless a budget is given explicitly, which is reported as forced), run the cascade
and return the assessments with the versions that produced them: the numeric model's content hash, the LLM's
registered version, the level calibration's version.

store_and_route: store every assessment (with the exact prompt sent and those versions) and route the ones that
need a person to the review queue, in the caller's transaction.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.auth.roles import require_role
from core.db.tables import ModelVersion, User
from core.errors import ValidationError
from core.settings import get_settings
from domains.finance.features import compute_features, with_features
from domains.finance.ingest import CANONICAL, FLAG_COLUMN, BadRow, OddField, apply_mapping, validate
from domains.finance.llm import RiskLLM
from domains.finance.numeric import NumericModel
from domains.finance.pipeline import CascadePolicy, Progress, score_frame
from domains.finance.risk_fusion import DEFAULT_WEIGHT, FusionFit
from domains.finance.similar import SimilarCases
from domains.finance.versions import Versions

SCORERS = ("analyst", "engineer")  # admin always may
LLMSource = RiskLLM | Callable[[], RiskLLM] | None


def default_numeric_path() -> Path:
    """Where `fit` saves and every face loads the numeric model unless told otherwise."""
    return get_settings().data_dir / "finance" / "numeric.joblib"


@dataclass
class LLMPlan:
    """The LLM stage of one batch: calls, fusion weight, whether the user forced it, and the one-line note."""

    budget: int
    weight: float
    forced: bool
    note: str


@dataclass
class ScoreResult:
    """One scored batch.

    Attributes:
        assessments: pipeline.ASSESSMENT_COLUMNS plus `source_row` (1-based input row) and `odd_fields`.
        rows: the same transactions with canonical fields and features (for routing and similar cases).
        rejected: unscorable input rows with reasons; odd: odd optional fields, kept and counted.
        n_input: rows received.
        versions: what produced the assessments.
        plan: the LLM stage as decided; llm_calls / llm_seconds: what it cost.
        bands: the promised fraud-rate band per level, None for a model with fixed level edges.
    """

    assessments: pd.DataFrame
    rows: pd.DataFrame
    rejected: list[BadRow]
    odd: list[OddField]
    n_input: int
    versions: Versions
    plan: LLMPlan
    llm_calls: int = 0
    llm_seconds: float = 0.0
    bands: list[tuple[float, float]] | None = None  # promised fraud-rate band per level (calibrated models)

    def counts(self) -> dict[str, int]:
        """{"input", "scored", "rejected", "flagged"} as the backtest reports them."""
        flagged = int((self.assessments["odd_fields"] != "").sum()) if len(self.assessments) else 0
        return {
            "input": self.n_input,
            "scored": len(self.assessments),
            "rejected": len(self.rejected),
            "flagged": flagged,
        }

    def summary_lines(self) -> list[str]:
        """What every face tells the user: rows scored/rejected, odd fields, the LLM stage and its cost."""
        c = self.counts()
        lines = [f"{c['scored']} of {c['input']} rows scored, {c['rejected']} rejected as unscorable"]
        lines += [entry.message() for entry in self.odd]
        lines.append(self.plan.note)
        if self.llm_calls:
            lines.append(
                f"LLM stage: {self.llm_calls} calls in {self.llm_seconds:.1f} s "
                f"({self.llm_seconds / self.llm_calls:.3f} s per call)"
            )
        return lines

    def records(self) -> list[dict[str, Any]]:
        """Assessments as JSON-ready dicts (missing values as None)."""
        frame = self.assessments.astype(object).where(self.assessments.notna(), None)
        return frame.to_dict("records")


def load_numeric(path: Path | None = None) -> NumericModel:
    """The numeric model at `path` (default: default_numeric_path())."""
    return NumericModel.load(path or default_numeric_path())


def plan_llm(numeric: NumericModel, n_rows: int, llm_budget: int | None) -> LLMPlan:
    """Decide the LLM stage from the model's learned fusion and an optional explicit budget.

    None: the fusion decides (its share of a batch when the LLM gained on the validation slice, else nothing);
    0: no LLM; N > 0: up to N calls whatever the fusion says (forced when it found no gain).
    """
    fusion = getattr(numeric, "fusion", None)
    fusion = fusion if isinstance(fusion, FusionFit) else None
    if llm_budget == 0:
        return LLMPlan(0, 0.0, False, "LLM off: the LLM budget is 0 (numeric screen alone)")
    if llm_budget is None:
        if fusion is not None and fusion.llm_used:
            budget = max(1, math.ceil(fusion.llm_rate * n_rows))
            return LLMPlan(budget, fusion.weight, False, f"{fusion.reason}; up to {budget} LLM calls")
        reason = fusion.reason if fusion is not None else "LLM skipped: this numeric model has no learned fusion"
        return LLMPlan(0, 0.0, False, reason)
    if llm_budget < 0:
        raise ValidationError(f"LLM budget must be 0 or more, not {llm_budget}")
    if fusion is not None and fusion.llm_used:
        return LLMPlan(
            llm_budget, fusion.weight, False, f"{fusion.reason}; up to {llm_budget} LLM calls (budget given)"
        )
    measured = fusion is not None and bool(fusion.llm_name)
    weight = fusion.weight if measured and fusion is not None else DEFAULT_WEIGHT
    why = fusion.reason if fusion is not None else "this numeric model has no learned fusion"
    how = "its learned weight" if measured else "an assumed weight, never measured"
    return LLMPlan(
        llm_budget,
        weight,
        True,
        f"LLM forced on up to {llm_budget} rows by the given budget ({why}); {how} {weight:.1f}",
    )


def registered_llm(session: Session | None, llm: RiskLLM) -> ModelVersion | None:
    """The registry entry whose exported folder the LLM runs, if any (matched on the folder path)."""
    folder = getattr(llm, "folder", None) or getattr(getattr(llm, "loaded", None), "folder", None)
    if session is None or folder is None:
        return None
    path = str(Path(folder).resolve())
    return session.scalar(select(ModelVersion).where(ModelVersion.path == path).order_by(ModelVersion.version.desc()))


def score_batch(
    session: Session | None,
    *,
    user: User | None,
    frame: pd.DataFrame,
    mapping: dict[str, str] | None = None,
    numeric: NumericModel | Path | None = None,
    llm: LLMSource = None,
    llm_budget: int | None = None,
    llm_version: str | None = None,
    similar: SimilarCases | None = None,
    language: str = "en",
    k_examples: int = 0,
    progress: Progress | None = None,
    source: str = "input",
) -> ScoreResult:
    """Score a batch of raw transactions (see the module docstring).

    Args:
        session: database session for registry look-ups (None: versions from the models themselves).
        user: the acting user, role-checked when given (analyst, engineer, admin); None scores anonymously
            (the CLI without --store, an API client without `user`): nothing is recorded then.
        frame: raw rows; mapping: {canonical field: column}.
        numeric: the numeric model or its file (default: default_numeric_path()).
        llm: the adjudicating LLM, or a factory called only when the LLM stage runs.
        llm_budget: None lets the learned fusion decide; an explicit number forces that many calls at most.
        llm_version: the LLM's registered version when the caller knows it (else looked up by folder).
        similar: few-shot case source; k_examples: cases per prompt.
        progress: (done, total) callback during the LLM stage (rich bar in the CLI, job progress in the app).
        source: how messages name the input ("tx.csv", "request").

    Raises:
        ValidationError: bad mapping or settings; PermissionDenied: the user may not score.
    """
    if user is not None:
        require_role(user, *SCORERS, action="score transactions")
    if language not in ("en", "zh"):
        raise ValidationError(f"language must be en or zh, not {language!r}")
    mapping = dict(mapping or {})
    unknown = [name for name in mapping if name not in CANONICAL]
    if unknown:
        raise ValidationError(f"mapping: unknown field(s) {', '.join(unknown)}; known fields: {', '.join(CANONICAL)}")
    model = numeric if isinstance(numeric, NumericModel) else load_numeric(numeric)
    data = validate(apply_mapping(frame, mapping, source=source))
    extra = [c for c in model.columns if c in data.extra_features]
    plan = plan_llm(model, len(data.frame), llm_budget)
    adjudicator: RiskLLM | None = None
    if plan.budget > 0 and len(data.frame):
        adjudicator = llm() if callable(llm) and not hasattr(llm, "answer") else llm  # type: ignore[assignment]
        if adjudicator is None:
            if plan.forced or llm_budget:
                raise ValidationError("an LLM budget was given but no LLM is configured: name the model to use")
            plan = replace(plan, budget=0, note=plan.note + "; but no LLM is configured here: numeric screen alone")
    registered = registered_llm(session, adjudicator) if adjudicator is not None else None
    calibration = getattr(model, "calibration", None)
    versions = Versions(
        numeric=model.version,
        llm=llm_version
        or (f"{registered.name}:v{registered.version}" if registered else adjudicator.name if adjudicator else None),
        calibration=calibration.version if calibration is not None else None,  # type: ignore[attr-defined]
        llm_registered=registered,
    )
    bands = [(b.low, b.high) for b in calibration.bands] if calibration is not None else None  # type: ignore[attr-defined]
    if data.frame.empty:
        empty = pd.DataFrame(columns=["source_row", "odd_fields"])
        return ScoreResult(empty, data.frame, data.bad, data.odd, data.n_input, versions, plan, bands=bands)
    feats = compute_features(data.frame, extra)
    policy = CascadePolicy(budget=plan.budget, fusion_weight=plan.weight, language=language, k_examples=k_examples)
    scored = score_frame(
        data.frame,
        model,
        llm=adjudicator,
        similar=similar if k_examples > 0 else None,
        policy=policy,
        extra=extra,
        features=feats,
        progress=progress,
    )
    scored.insert(2, "source_row", data.frame["source_row"].to_numpy())
    scored["odd_fields"] = data.frame[FLAG_COLUMN].to_numpy()
    return ScoreResult(
        scored,
        with_features(data.frame, feats),
        data.bad,
        data.odd,
        data.n_input,
        versions,
        plan,
        int(scored.attrs.get("llm_calls", 0)),
        float(scored.attrs.get("llm_seconds", 0.0)),
        bands,
    )


def store_and_route(
    session: Session, *, user: User, result: ScoreResult, batch_id: str | None = None
) -> dict[str, Any]:
    """Store every assessment of `result` and route those needing a person to review.

    Returns:
        {"batch_id", "stored", "recorded", "queued"}.

    Raises:
        PermissionDenied: the user may not score.
    """
    from domains.finance.routing import route_assessments
    from domains.finance.store import store_assessments

    require_role(user, *SCORERS, action="store and route finance assessments")
    batch_id = batch_id or uuid.uuid4().hex
    if result.assessments.empty:
        return {"batch_id": batch_id, "stored": 0, "recorded": 0, "queued": 0}
    stored = store_assessments(session, scored=result.assessments, batch_id=batch_id, versions=result.versions)
    routed = route_assessments(
        session, user=user, scored=result.assessments, rows=result.rows, versions=result.versions, bands=result.bands
    )
    return {"batch_id": batch_id, "stored": stored, **routed}


def explain(result: ScoreResult, *, llm: RiskLLM, positions: list[int], language: str = "en") -> list[dict[str, Any]]:
    """The LLM's reading of chosen assessments (e.g. the flagged row an analyst opens): explanations, not scores.

    The assessments are not changed; each answer is parsed strictly and returned with the exact prompt sent.

    Returns:
        Per position: {"transaction_id", "prompt", "answer", "parse_ok", "level", "reasons"}.
    """
    from domains.finance.features import reasons_for
    from domains.finance.parser import parse_risk
    from domains.finance.pipeline import adjudicate, prompts_for

    if not positions:
        return []
    rows = result.rows.iloc[positions].reset_index(drop=True)
    why = reasons_for(rows)
    policy = CascadePolicy(budget=len(positions), language=language, k_examples=0)
    prompts = prompts_for(rows, why, llm, None, policy)
    out = []
    for rec, prompt, answer in zip(
        rows.to_dict("records"), prompts, adjudicate(rows, why, llm, None, policy, prompts=prompts), strict=True
    ):
        parsed = parse_risk(answer.text)
        out.append(
            {
                "transaction_id": str(rec["transaction_id"]),
                "prompt": prompt,
                "answer": answer.text,
                "parse_ok": parsed.ok,
                "level": parsed.level,
                "reasons": parsed.reasons,
            }
        )
    return out
