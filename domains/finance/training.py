"""Instruction records for fine-tuning the finance adapter: risk prompt -> level and basis from label and features.

Shared record format (one JSONL line): {"messages": [system, user, assistant], "meta": {...}}; the assistant turn is
the answer the strict parser accepts, from targets.target_for(label, fired reasons).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from domains.finance.features import compute_features, reasons_for
from domains.finance.parser import format_risk
from domains.finance.prompts import build_messages
from domains.finance.targets import target_for


def training_records(
    frame: pd.DataFrame, labels: np.ndarray, *, extra: list[str] | None = None, language: str = "en"
) -> list[dict[str, object]]:
    """One record per labelled transaction of `frame` (canonical columns), labels shape (n,) 0/1."""
    feats = compute_features(frame, extra)
    reasons = reasons_for(feats)
    merged = pd.concat([frame.reset_index(drop=True), feats.reset_index(drop=True)], axis=1)
    merged = merged.loc[:, ~merged.columns.duplicated(keep="last")]
    records: list[dict[str, object]] = []
    for rec, why, label in zip(merged.to_dict("records"), reasons, np.asarray(labels, dtype=int), strict=True):
        level, basis = target_for(int(label), why)
        messages = build_messages(rec, why, language=language)
        messages.append({"role": "assistant", "content": format_risk(level, basis, language=language)})
        records.append(
            {
                "messages": messages,
                "meta": {
                    "domain": "finance",
                    "transaction_id": str(rec["transaction_id"]),
                    "account_id": str(rec["account_id"]),
                    "label": int(label),
                    "level": level,
                    "reasons": basis,
                    "language": language,
                },
            }
        )
    return records


def write_jsonl(records: list[dict[str, object]], path: Path) -> Path:
    """Write records as JSONL atomically (temporary file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path
