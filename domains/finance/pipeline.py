"""The scoring cascade: numeric screen on every transaction, LLM adjudication of a budgeted selection, fusion.

Selection (at most `budget` transactions go to the LLM): first an audit sample (a seeded random share of all
rows, so the LLM is also checked where the numeric model is confident), then the uncertain band nearest the
threshold first, then high scores above the band, highest first. Each assessment keeps all three variants
(numeric, LLM, fused), the exact prompt the LLM was sent and the fields a review routing policy needs.

Levels come from the model's calibration (calibration.py) when it has one. Reasons: the LLM's when it answered with
some, else the rule signals that fired, else — at level 2 or above — the numeric screen's strongest features
(NumericModel.strongest_features), so no flagged assessment reaches an analyst without one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from domains.finance.features import compute_features, reasons_for, with_features
from domains.finance.llm import LLM_THRESHOLD, LLMAnswer, RiskLLM, expected_level
from domains.finance.numeric import NumericModel
from domains.finance.parser import parse_risk
from domains.finance.prompts import ANSWER_PREFIX, build_messages
from domains.finance.risk_fusion import Band, fuse
from domains.finance.similar import SimilarCases

ASSESSMENT_COLUMNS = (
    "transaction_id",
    "account_id",
    "numeric_score",
    "numeric_level",
    "adjudicated",
    "audit_sample",
    "llm_level",
    "llm_score",
    "parse_ok",
    "llm_answer",
    "llm_reasons",
    "fused_score",
    "risk_level",
    "disagreement",
    "reasons",
    "prompt",
)
EXPLAIN_FROM_LEVEL = 2  # assessments at this level or above always carry reasons
# progress(done, total): called as LLM answers arrive (the CLI draws a rich bar, the app updates its job row)
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class CascadePolicy:
    """Which transactions the LLM sees and how many.

    Attributes:
        budget: most LLM calls for the batch.
        audit_rate: share of all rows sampled at random for audit (within the budget, at most a tenth of it).
        band_width: the uncertain band is Band.around(threshold, width=band_width).
        fusion_weight: the LLM's weight in fusion.fuse.
        k_examples: similar labelled cases per prompt.
        max_new_tokens: answer length cap.
        language: prompt language, "en" or "zh".
        seed: audit sampling seed.
    """

    budget: int = 0
    audit_rate: float = 0.01
    band_width: float = 4.0
    fusion_weight: float = 0.5
    k_examples: int = 2
    max_new_tokens: int = 32
    language: str = "en"
    seed: int = 0


def select_for_llm(
    prob: np.ndarray, band: Band, threshold: float, policy: CascadePolicy
) -> tuple[np.ndarray, np.ndarray]:
    """(selected row indices, audit flag per row) for probabilities `prob` of shape (n,)."""
    n = len(prob)
    audit = np.zeros(n, dtype=bool)
    if policy.budget <= 0 or n == 0:
        return np.array([], dtype=int), audit
    rng = np.random.default_rng(policy.seed)
    n_audit = min(int(rng.binomial(n, policy.audit_rate)), max(policy.budget // 10, 0))
    audit_idx = rng.choice(n, size=n_audit, replace=False) if n_audit else np.array([], dtype=int)
    audit[audit_idx] = True
    in_band = np.flatnonzero((prob >= band.low) & (prob <= band.high) & ~audit)
    in_band = in_band[np.argsort(np.abs(prob[in_band] - threshold), kind="stable")]
    high = np.flatnonzero((prob > band.high) & ~audit)
    high = high[np.argsort(-prob[high], kind="stable")]
    chosen = np.concatenate([audit_idx, in_band, high])[: policy.budget].astype(int)
    return chosen, audit


def prompts_for(
    rows: pd.DataFrame, reasons: list[list[str]], llm: RiskLLM, similar: SimilarCases | None, policy: CascadePolicy
) -> list[str]:
    """Rendered prompts for `rows` (canonical fields + features), each ending with the answer prefix."""
    prefix = ANSWER_PREFIX[policy.language]
    examples = similar.similar(rows, policy.k_examples) if similar is not None else [[] for _ in range(len(rows))]
    return [
        llm.render(build_messages(rec, why, examples=ex, language=policy.language)) + prefix
        for rec, why, ex in zip(rows.to_dict("records"), reasons, examples, strict=True)
    ]


def adjudicate(
    rows: pd.DataFrame,
    reasons: list[list[str]],
    llm: RiskLLM,
    similar: SimilarCases | None,
    policy: CascadePolicy,
    *,
    progress: Progress | None = None,
    prompts: list[str] | None = None,
) -> list[LLMAnswer]:
    """LLM answers for `rows` (canonical fields + features), reporting progress after each batch of answers.

    The assistant turn is started with the answer prefix ("Risk level: " / "风险等级:"), which is put back in front of
    the generated text, and the answer is cut at its first line break (a stop sequence): the format is one line.
    The parser stays strict on the result.
    """
    prefix = ANSWER_PREFIX[policy.language]
    prompts = prompts if prompts is not None else prompts_for(rows, reasons, llm, similar, policy)
    answers: list[LLMAnswer] = []
    step = 8
    for start in range(0, len(prompts), step):
        for ans in llm.answer(prompts[start : start + step], max_new_tokens=policy.max_new_tokens):
            first_line = (ans.text.strip().splitlines() or [""])[0]
            answers.append(LLMAnswer(prefix + first_line, ans.level_probs))
        if progress is not None:
            progress(len(answers), len(prompts))
    return answers


def score_frame(
    frame: pd.DataFrame,
    numeric: NumericModel,
    *,
    llm: RiskLLM | None = None,
    similar: SimilarCases | None = None,
    policy: CascadePolicy | None = None,
    extra: list[str] | None = None,
    features: pd.DataFrame | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Assess every transaction of `frame` (canonical columns, validated).

    Args:
        frame: transactions; features are computed causally over the whole frame unless `features` is given.
        numeric: fitted numeric model.
        llm: the adjudicating LLM (None: numeric only).
        similar: few-shot source (None: zero-shot prompts).
        policy: cascade policy (budget 0: no LLM calls).
        extra: extra numeric feature columns of `frame`.
        features: precomputed features aligned with `frame` (backtests compute them once over the whole history).
        progress: called with (answers so far, LLM calls planned) during the LLM stage.

    Returns:
        One row per transaction with ASSESSMENT_COLUMNS, in `frame`'s order; `attrs` holds "llm_calls" and
        "llm_seconds" (wall time of the LLM stage).
    """
    policy = policy or CascadePolicy()
    feats = compute_features(frame, extra) if features is None else features
    reasons = reasons_for(feats)
    prob = numeric.predict(feats)
    band = Band.around(numeric.threshold, width=policy.band_width)
    n = len(frame)
    llm_level = np.full(n, np.nan)
    llm_score = np.full(n, np.nan)
    parse_ok = np.full(n, None, dtype=object)
    answer = np.full(n, None, dtype=object)
    llm_reasons = np.full(n, None, dtype=object)
    prompt = np.full(n, None, dtype=object)
    seconds = 0.0
    chosen, audit = (np.array([], dtype=int), np.zeros(n, dtype=bool))
    if llm is not None:
        chosen, audit = select_for_llm(prob, band, numeric.threshold, policy)
    if len(chosen):
        assert llm is not None
        rows = with_features(frame, feats, chosen)
        why = [reasons[i] for i in chosen]
        started = time.perf_counter()
        texts = prompts_for(rows, why, llm, similar, policy)
        answers = adjudicate(rows, why, llm, similar, policy, progress=progress, prompts=texts)
        seconds = time.perf_counter() - started
        for i, ans, text in zip(chosen, answers, texts, strict=True):
            parsed = parse_risk(ans.text)
            answer[i], parse_ok[i], prompt[i] = ans.text, parsed.ok, text
            if parsed.ok:
                assert parsed.level is not None
                llm_level[i] = parsed.level
                llm_score[i] = (expected_level(ans.level_probs) if ans.level_probs is not None else parsed.level) / 5
                llm_reasons[i] = ",".join(parsed.reasons)
    adjudicated = np.zeros(n, dtype=bool)
    adjudicated[chosen] = True
    numeric_level = numeric.levels(prob)
    llm_threshold = llm.threshold if llm is not None else LLM_THRESHOLD
    fused = fuse(prob, llm_score, numeric.threshold, policy.fusion_weight, llm_threshold=llm_threshold)
    risk_level = numeric.levels(fused)
    final_reasons = [list(r) for r in reasons]
    for i in np.flatnonzero(~np.isnan(llm_score)):
        if llm_reasons[i]:
            final_reasons[i] = str(llm_reasons[i]).split(",")
    bare = [i for i in np.flatnonzero(risk_level >= EXPLAIN_FROM_LEVEL) if not final_reasons[i]]
    if bare:
        for i, strongest in zip(bare, numeric.strongest_features(feats.iloc[bare]), strict=True):
            final_reasons[i] = strongest
    out = pd.DataFrame(
        {
            "transaction_id": frame["transaction_id"].astype(str).to_numpy(),
            "account_id": frame["account_id"].astype(str).to_numpy(),
            "numeric_score": prob,
            "numeric_level": numeric_level,
            "adjudicated": adjudicated,
            "audit_sample": audit & adjudicated,
            "llm_level": pd.array(np.where(np.isnan(llm_level), pd.NA, llm_level), dtype="Int64"),
            "llm_score": llm_score,
            "parse_ok": parse_ok,
            "llm_answer": answer,
            "llm_reasons": llm_reasons,
            "fused_score": fused,
            "risk_level": risk_level,
            "disagreement": pd.array(
                np.where(np.isnan(llm_level), pd.NA, np.abs(np.nan_to_num(llm_level) - numeric_level)), dtype="Int64"
            ),
            "reasons": [",".join(r) for r in final_reasons],
            "prompt": prompt,
        },
        index=frame.index,
    )
    out.attrs.update({"llm_calls": int(len(chosen)), "llm_seconds": float(seconds)})
    return out
