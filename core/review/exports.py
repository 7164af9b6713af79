"""Exports of reviewed items: a flat file for auditors, and fine-tuning records from approved and edited items.

Training record format (the contract shared with the fine-tuning core): one JSON object per line,
`{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...], "meta": {...}}`, where the last
assistant message is the target. For an edited item the target is the reviewer's text, for an approved one the
model's own output.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from core.audit.record import record_event
from core.auth.roles import require_role
from core.db.tables import User
from core.errors import ValidationError
from core.review.states import APPROVED, EDITED
from core.review.tables import ModelOutput, ReviewItem

FORMATS = ("csv", "jsonl")
EXPORT_COLUMNS = (
    "item_id",
    "output_id",
    "domain",
    "queue",
    "state",
    "reasons",
    "policy",
    "policy_hash",
    "created_at",
    "decided_at",
    "decided_by",
    "decision_reason",
    "model_name",
    "model_version",
    "precision",
    "latency_ms",
    "context_ids",
    "input_text",
    "prompt",
    "raw_output",
    "parsed",
    "edited_text",
    "diff",
)


def _write_atomic(out: Path, lines: Iterator[str]) -> str:
    """Write `lines` to a temporary file next to `out`, then rename it; returns the file's SHA-256."""
    out.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            for line in lines:
                handle.write(line)
                digest.update(line.encode())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest.hexdigest()


def _rows(session: Session, since: datetime) -> Iterator[dict[str, Any]]:
    decider = aliased(User)
    query = (
        select(ReviewItem, ModelOutput, decider.username)
        .join(ModelOutput, ModelOutput.id == ReviewItem.output_id)
        .outerjoin(decider, decider.id == ReviewItem.decided_by)
        .where(ReviewItem.created_at >= since)
        .order_by(ReviewItem.id)
    )
    for item, output, decided_by in session.execute(query):
        yield {
            "item_id": item.id,
            "output_id": output.id,
            "domain": item.domain,
            "queue": item.queue,
            "state": item.state,
            "reasons": item.reasons,
            "policy": f"{item.policy_name}@{item.policy_version}",
            "policy_hash": item.policy_hash,
            "created_at": item.created_at.isoformat(),
            "decided_at": item.decided_at.isoformat() if item.decided_at else None,
            "decided_by": decided_by,
            "decision_reason": item.decision_reason,
            "model_name": output.model_name,
            "model_version": output.model_version,
            "precision": output.precision,
            "latency_ms": output.latency_ms,
            "context_ids": output.context_ids,
            "input_text": output.input_text,
            "prompt": output.prompt,
            "raw_output": output.raw_output,
            "parsed": output.parsed,
            "edited_text": item.edited_text,
            "diff": item.diff,
        }


def _csv_lines(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    class _Line:
        value = ""

        def write(self, s: str) -> None:
            self.value += s

    line = _Line()
    writer = csv.DictWriter(line, fieldnames=EXPORT_COLUMNS)
    writer.writeheader()
    yield line.value
    for row in rows:
        line.value = ""
        flat = {k: json.dumps(v, ensure_ascii=False) if isinstance(v, list | dict) else v for k, v in row.items()}
        writer.writerow(flat)
        yield line.value


def export_items(session: Session, *, user: User, since: datetime, fmt: str, out: Path) -> int:
    """Write every review item created since `since` (with its output and latest decision) to `out`.

    Compliance and admin only; audited with the file's SHA-256 so the auditor's copy can be checked later.

    Raises:
        ValidationError: unknown format.
    """
    require_role(user, "compliance", action="export review items")
    if fmt not in FORMATS:
        raise ValidationError(f"unknown export format '{fmt}': choose one of {', '.join(FORMATS)}")
    rows = list(_rows(session, since))
    if fmt == "csv":
        sha = _write_atomic(out, _csv_lines(iter(rows)))
    else:
        sha = _write_atomic(out, (json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    record_event(
        session,
        actor=user.username,
        action="review.exported",
        subject_type="file",
        subject_id=out.name,
        payload={"since": since.isoformat(), "format": fmt, "rows": len(rows), "sha256": sha},
    )
    return len(rows)


def training_record(item: ReviewItem, output: ModelOutput) -> dict[str, Any]:
    """The fine-tuning record of one approved or edited item (target: the edit, else the model's output)."""
    messages = []
    if output.system_prompt:
        messages.append({"role": "system", "content": output.system_prompt})
    messages.append({"role": "user", "content": output.prompt})
    target = item.edited_text if item.state == EDITED and item.edited_text is not None else output.raw_output
    messages.append({"role": "assistant", "content": target})
    meta = {
        "source": "review",
        "domain": item.domain,
        "review_item_id": item.id,
        "output_id": output.id,
        "decision": item.state,
        "model_name": output.model_name,
        "model_version": output.model_version,
        "policy": f"{item.policy_name}@{item.policy_version}",
        "decided_at": item.decided_at.isoformat() if item.decided_at else None,
    }
    return {"messages": messages, "meta": meta}


def to_training(session: Session, *, user: User, domain: str, out: Path) -> int:
    """Write approved and edited items of `domain` as fine-tuning records (JSONL) to `out`; returns how many.

    Engineers (who train), compliance and admin may export.
    """
    require_role(user, "engineer", "compliance", action="export review items for training")
    query = (
        select(ReviewItem, ModelOutput)
        .join(ModelOutput, ModelOutput.id == ReviewItem.output_id)
        .where(ReviewItem.domain == domain, ReviewItem.state.in_((APPROVED, EDITED)))
        .order_by(ReviewItem.id)
    )
    records = [training_record(item, output) for item, output in session.execute(query)]
    sha = _write_atomic(out, (json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    record_event(
        session,
        actor=user.username,
        action="review.training_exported",
        subject_type="file",
        subject_id=out.name,
        payload={"domain": domain, "records": len(records), "sha256": sha},
    )
    return len(records)
