"""Fitting the screen on a labelled training period: the numeric model on its early part, then — on the time-ordered
validation slice that follows, never on later rows — the learned fusion (whether and how much the LLM counts) and
the calibrated risk levels. Everything learned is saved inside the NumericModel file.

`finmed finance fit`, the backtest (on its training part only) and the demo bootstrap all fit through here, so a
model scored in production was calibrated exactly as the backtest measured it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from core.errors import ValidationError
from domains.finance.calibration import LevelCalibration
from domains.finance.features import with_features
from domains.finance.llm import RiskLLM
from domains.finance.numeric import NumericModel
from domains.finance.pipeline import CascadePolicy, Progress, score_frame
from domains.finance.risk_fusion import FusionFit, fit_fusion, fuse, no_llm
from domains.finance.similar import InMemorySimilarCases

VAL_SHARE = 0.25  # the latest quarter of the training period is the validation slice


def time_split(frame: pd.DataFrame, train_share: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """(early positions, late positions): the earliest `train_share` of rows by timestamp, then the rest."""
    order = np.argsort(frame["timestamp"].to_numpy(), kind="stable")
    cut = int(round(len(order) * train_share))
    return np.sort(order[:cut]), np.sort(order[cut:])


def fit_screen(
    frame: pd.DataFrame,
    labels: np.ndarray,
    features: pd.DataFrame,
    *,
    llm: RiskLLM | None = None,
    policy: CascadePolicy | None = None,
    val_share: float = VAL_SHARE,
    max_iter: int = 150,
    progress: Progress | None = None,
) -> NumericModel:
    """Fit the numeric model, the fusion and the levels on a labelled training period.

    Args:
        frame: canonical transactions of the training period; labels: 0/1 per row, shape (n,).
        features: features aligned with `frame` (computed over the whole history, they are causal).
        llm: the LLM to measure on the validation slice (None: the fusion is "numeric alone").
        policy: cascade policy on the slice; `budget` is the most LLM calls spent there.
        val_share: the share of the period (latest rows) held out as the validation slice.
        max_iter: boosting rounds.
        progress: LLM progress callback (done, total).

    Returns:
        The numeric model with `calibration`, `fusion` and meta["validation"] (slice rows, dates).
    """
    frame = frame.reset_index(drop=True)
    features = features.reset_index(drop=True)
    y = np.asarray(labels, dtype=int)
    early, val = time_split(frame, 1.0 - val_share)
    if len(np.unique(y[early])) < 2:
        raise ValidationError(
            f"the earliest {100 * (1 - val_share):.0f}% of the training period has only one label value; "
            "need fraud and legitimate rows there"
        )
    numeric = NumericModel.fit(features.iloc[early], y[early], max_iter=max_iter)
    policy = policy or CascadePolicy()
    y_val = y[val]
    prob = numeric.predict(features.iloc[val])
    llm_score = np.full(len(val), np.nan)
    if llm is None or policy.budget <= 0:
        fusion: FusionFit = no_llm(
            "LLM not measured: fitted without an LLM budget on the validation slice (numeric screen alone)",
            val_rows=len(val),
        )
    else:
        similar = None
        if policy.k_examples > 0:
            similar = InMemorySimilarCases(with_features(frame, features, early), y[early])
        scored = score_frame(
            frame.iloc[val],
            numeric,
            llm=llm,
            similar=similar,
            policy=replace(policy, fusion_weight=0.0),
            features=features.iloc[val],
            progress=progress,
        )
        llm_score = scored["llm_score"].to_numpy(dtype=float)
        fusion = fit_fusion(y_val, prob, llm_score, numeric.threshold, llm_threshold=llm.threshold, llm_name=llm.name)
    fused = fuse(prob, llm_score, numeric.threshold, fusion.weight, llm_threshold=getattr(llm, "threshold", 0.5))
    stamps = frame["timestamp"].iloc[val]
    source = f"validation slice {stamps.min():%Y-%m-%d}..{stamps.max():%Y-%m-%d} ({len(val)} rows), fused score"
    try:
        numeric.calibration = LevelCalibration.fit(fused, y_val, source=source)
    except ValidationError as exc:
        numeric.calibration = None
        numeric.meta["calibration_note"] = f"levels use fixed edges: {exc}"
    numeric.fusion = fusion
    numeric.meta["validation"] = {"rows": len(val), "fraud": int(y_val.sum()), "source": source}
    return numeric
