"""What a running job sees: its parameters, the user who submitted it, a database, and a progress callback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.db.engine import session_scope
from core.db.tables import User
from core.errors import NotFoundError


class JobCancelled(Exception):
    """Raised from `JobContext.progress` when someone cancelled the job; the worker marks it cancelled."""


class JobInterrupted(Exception):
    """Raised from `JobContext.progress` when the worker is stopping; the worker puts the job back in the queue."""


@dataclass
class JobContext:
    """Handed to a job function by the worker.

    Attributes:
        job_id: the jobs row.
        kind: the job kind's name.
        params: the JSON parameters given at submission.
        user_id: the submitting user; the job acts as this user (services check its role again).
        engine: the database the worker uses.
        report: the worker's progress callback (fraction 0..1, message); raises JobCancelled / JobInterrupted.
    """

    job_id: int
    kind: str
    params: dict[str, Any]
    user_id: int | None
    engine: Engine
    report: Callable[[float, str], None]

    def progress(self, fraction: float, message: str = "") -> None:
        """Record progress (clamped to 0..1) and a one-line message; stops the job when it was cancelled."""
        self.report(min(max(float(fraction), 0.0), 1.0), message)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session on the worker's database that commits at the end of the block."""
        with session_scope(self.engine) as session:
            yield session

    def acting_user(self, session: Session) -> User:
        """The submitting user's row in `session`.

        Raises:
            NotFoundError: the job has no submitter, or the user was removed.
        """
        user = session.get(User, self.user_id) if self.user_id is not None else None
        if user is None:
            raise NotFoundError(f"job {self.job_id}: its submitting user (id {self.user_id}) does not exist")
        return user
