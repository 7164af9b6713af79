"""Anchors: an outside copy of the audit chain's head, so cutting rows from the chain's end is detectable.

A chain whose last rows were deleted is still a valid, shorter chain; only a head hash kept somewhere the database
administrator cannot rewrite (a signed e-mail, a WORM bucket, a printed report) reveals it. `write_anchor` records
the current head (id, hash, time) in a small JSON file; `verify --anchor FILE|HASH` fails unless that head is still
in the chain.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.atomic import write_bytes_atomic
from core.audit.record import GENESIS
from core.audit.tables import AuditEvent
from core.audit.verify import AUDITOR_ROLES
from core.auth.roles import require_role
from core.db.tables import User
from core.errors import ValidationError

HASH_RE = re.compile(r"^[0-9a-f]{64}$")


def current_head(session: Session) -> tuple[int | None, str]:
    """The id and hash of the chain's last event, or (None, GENESIS) for an empty chain."""
    row = session.execute(select(AuditEvent.id, AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)).first()
    return (None, GENESIS) if row is None else (int(row[0]), str(row[1]))


def write_anchor(session: Session, *, user: User, path: Path) -> dict[str, object]:
    """Write the current head to `path` (JSON, atomically) and return what was written; compliance and admin."""
    require_role(user, *AUDITOR_ROLES, action="anchor the audit log")
    event_id, head = current_head(session)
    record = {"head": head, "event_id": event_id, "taken_at": datetime.now(UTC).isoformat(), "by": user.username}
    write_bytes_atomic(Path(path), (json.dumps(record, indent=2) + "\n").encode())
    return record


def read_anchor(value: str) -> str:
    """A head hash from `value`: the 64-hex-digit hash itself, or the path of a file `write_anchor` wrote.

    Raises:
        ValidationError: neither a hash nor a readable anchor file with a `head` hash.
    """
    text = value.strip().lower()
    if HASH_RE.match(text):
        return text
    path = Path(value)
    if not path.is_file():
        raise ValidationError(f"--anchor {value!r} is neither a 64-digit head hash nor an anchor file")
    try:
        head = json.loads(path.read_text(encoding="utf-8")).get("head", "")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
        raise ValidationError(f"anchor file {path}: not the JSON that `finmed audit anchor` writes ({exc})") from exc
    if not isinstance(head, str) or not HASH_RE.match(head):
        raise ValidationError(f"anchor file {path}: field 'head' is not a 64-digit hash")
    return head
