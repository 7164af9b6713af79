"""The numeric screen: a gradient-boosted classifier on the features, its operating threshold, and what was learned
with it on the training period's validation slice (screen.py): the level calibration and the fusion fit.

Every transaction is scored by this model; the LLM only adjudicates what the cascade selects (pipeline.py).
`prob_to_level` (fixed edges) is the fallback for a model saved before levels were calibrated.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import precision_recall_curve
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from threadpoolctl import threadpool_limits

from core.atomic import atomic_file
from core.errors import NotFoundError, ValidationError
from core.settings import get_settings

LEVEL_EDGES = np.array([0.02, 0.1, 0.3, 0.6, 0.85])  # probability edges between levels 0|1|2|3|4|5


def _fit_threads() -> int:
    # OpenMP threads for fitting (FINMED_FINANCE_FIT_THREADS): on a shared, oversubscribed CPU one thread was 10x
    # faster than all (spin-waits).
    return get_settings().finance_fit_threads


def prob_to_level(prob: np.ndarray) -> np.ndarray:
    """Risk level 0-5 for fraud probabilities. Shape (n,) -> (n,) int."""
    return np.searchsorted(LEVEL_EDGES, np.asarray(prob, dtype=float), side="right").astype(int)


def best_f1_threshold(y: np.ndarray, score: np.ndarray) -> float:
    """The score threshold with the highest F1 on (y, score); 0.5 when y has one class."""
    if len(np.unique(y)) < 2:
        return 0.5
    precision, recall, thresholds = precision_recall_curve(y, score)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    return float(thresholds[int(np.argmax(f1))])


@dataclass
class NumericModel:
    """A fitted classifier with the feature columns it expects and the operating threshold chosen on training data.

    Attributes:
        calibration: the risk levels fitted on the validation slice (calibration.LevelCalibration), or None.
        fusion: the fusion fit on the validation slice (risk_fusion.FusionFit), or None (fit without an LLM).
        reference: each feature's median on the training rows, for `strongest_features`.
    """

    columns: list[str]
    classifier: HistGradientBoostingClassifier
    threshold: float = 0.5
    meta: dict[str, object] = field(default_factory=dict)
    calibration: object | None = None  # LevelCalibration (object: loaded pickles of older models lack the field)
    fusion: object | None = None  # FusionFit
    reference: dict[str, float] = field(default_factory=dict)

    def levels(self, score: np.ndarray) -> np.ndarray:
        """Risk level 0-5 per score: the calibrated cut points when the model has them, else prob_to_level."""
        calibration = getattr(self, "calibration", None)
        return calibration.level(score) if calibration is not None else prob_to_level(score)  # type: ignore[attr-defined]

    def strongest_features(self, features: pd.DataFrame, k: int = 2) -> list[list[str]]:
        """The `k` features that raise each row's probability most, as "screen:<feature>" reasons.

        Occlusion: each feature in turn is set to its training median (`reference`; the batch median for older
        models) and the drop in probability is that feature's share of the score. One predict call over
        (rows x features) copies; used only for the few rows at level 2 or above with no other reason.
        """
        if len(features) == 0:
            return []
        x = features[self.columns].to_numpy(dtype=float)  # (n, d)
        ref = np.array([getattr(self, "reference", {}).get(c, np.nan) for c in self.columns])
        ref = np.where(np.isnan(ref), np.nanmedian(x, axis=0), ref)
        n, d = x.shape
        base = self._predict_matrix(x)  # (n,)
        copies = np.repeat(x[:, None, :], d, axis=1)  # (n, d, d)
        copies[:, np.arange(d), np.arange(d)] = ref
        drop = base[:, None] - self._predict_matrix(copies.reshape(n * d, d)).reshape(n, d)  # (n, d)
        out = []
        for row in drop:
            top = [j for j in np.argsort(-row, kind="stable")[:k] if row[j] > 0]
            out.append([f"screen:{self.columns[j]}" for j in top])
        return out

    def _predict_matrix(self, x: np.ndarray) -> np.ndarray:
        with threadpool_limits(limits=_fit_threads()):
            return self.classifier.predict_proba(x)[:, 1]

    @property
    def version(self) -> str:
        """A content hash of the fitted classifier and threshold ("numeric@<12 hex>")."""
        import io

        buffer = io.BytesIO()
        joblib.dump((self.columns, self.classifier, self.threshold), buffer)
        return "numeric@" + hashlib.sha256(buffer.getvalue()).hexdigest()[:12]

    @classmethod
    def fit(cls, features: pd.DataFrame, y: np.ndarray, *, seed: int = 0, max_iter: int = 150) -> NumericModel:
        """Fit on `features` (n, d) and labels `y` (n,); threshold = best F1 on 3-fold out-of-fold probabilities."""
        y = np.asarray(y, dtype=int)
        if len(np.unique(y)) < 2:
            raise ValidationError("the training part has only one label value; need both fraud and legitimate rows")
        columns = list(features.columns)
        x = features.to_numpy(dtype=float)
        make = lambda: HistGradientBoostingClassifier(  # noqa: E731
            max_iter=max_iter,
            learning_rate=0.1,
            max_leaf_nodes=15,
            early_stopping=True,
            n_iter_no_change=10,
            class_weight="balanced",
            random_state=seed,
        )
        with threadpool_limits(limits=_fit_threads()):
            return cls._fit(make, columns, x, y, seed)

    @classmethod
    def _fit(
        cls,
        make: Callable[[], HistGradientBoostingClassifier],
        columns: list[str],
        x: np.ndarray,
        y: np.ndarray,
        seed: int,
    ) -> NumericModel:
        folds = min(3, int(np.bincount(y).min()))
        if folds >= 2:
            oof = cross_val_predict(
                make(), x, y, cv=StratifiedKFold(folds, shuffle=True, random_state=seed), method="predict_proba"
            )[:, 1]
            threshold = best_f1_threshold(y, oof)
        else:
            threshold = 0.5
        classifier = make().fit(x, y)
        reference = {c: float(v) for c, v in zip(columns, np.nanmedian(x, axis=0), strict=True)}
        meta: dict[str, object] = {"n_train": int(len(y)), "positives": int(y.sum())}
        return cls(columns, classifier, threshold, meta, reference=reference)

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Fraud probability per row, shape (n,)."""
        missing = [c for c in self.columns if c not in features.columns]
        if missing:
            raise ValidationError(f"features missing for the numeric model: {', '.join(missing)}")
        return self._predict_matrix(features[self.columns].to_numpy(dtype=float))

    def save(self, path: Path) -> Path:
        """Write atomically (temporary file, then rename)."""
        with atomic_file(path) as tmp:
            joblib.dump(self, tmp)
        return path

    @staticmethod
    def load(path: Path) -> NumericModel:
        """Load a model written by `save` (only load files you wrote: joblib runs pickle)."""
        if not path.is_file():
            raise NotFoundError(f"numeric model {path} not found: run `finmed finance fit` first")
        model = joblib.load(path)
        if not isinstance(model, NumericModel):
            raise ValidationError(f"{path} is not a finance numeric model")
        return model
