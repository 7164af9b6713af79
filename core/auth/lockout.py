"""Throttling of failed sign-ins: per user name and client address, with an account lock an admin can lift.

Two layers, because they need different stores:
- Windows of failures (core.rate_limit, in the signing-in process): at most `per_name` failures a minute for one
  user name (known or not, so guessing names learns nothing) and `per_address` for one client address. An attempt
  past either is refused without its password being checked.
- The account lock (users.locked_until, in the database): the failure that fills a known user's window locks the
  account for LOCK_MINUTES, whichever process serves the next attempt; it lifts itself at that time, or an admin
  lifts it earlier with `finmed users unlock NAME` (another process, hence the database).

Every refusal, lock and unlock is an audit event (login.refused, user.locked, user.unlocked).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.audit.record import record_event
from core.db.base import utcnow
from core.db.tables import User
from core.errors import ConflictError, NotFoundError, RateLimited
from core.rate_limit import FailureLimiter

# `finmed users unlock --help` states these numbers; keep it in step.
FAILURES_PER_NAME = 10  # a minute; the 10th failure locks a known account, the 11th attempt is refused unchecked
FAILURES_PER_ADDRESS = 30  # a minute, over all names tried from one address
LOCK_MINUTES = 15


def _aware(stamp: datetime) -> datetime:
    """SQLite hands back naive UTC datetimes, PostgreSQL aware ones; compare both as aware UTC."""
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp


@dataclass
class SignInGuard:
    """The failure windows of one signing-in process (tests make their own; the app uses `default_guard`)."""

    per_name: int = FAILURES_PER_NAME
    per_address: int = FAILURES_PER_ADDRESS
    lock_minutes: int = LOCK_MINUTES
    names: FailureLimiter = field(init=False)
    addresses: FailureLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.names = FailureLimiter(f"{self.per_name}/minute", scope="sign-in-name")
        self.addresses = FailureLimiter(f"{self.per_address}/minute", scope="sign-in-address")

    def refuse_if_throttled(self, session: Session, *, username: str, client: str, user: User | None) -> None:
        """Raise before a password is checked when the account is locked or a failure window is full.

        Raises:
            RateLimited: naming the reason and when to retry. The refusal is recorded (login.refused) in `session`
                first: the caller commits the session to keep that event (the app's sign-in does).
        """
        now = utcnow()
        if user is not None and user.locked_until is not None:
            until = _aware(user.locked_until)
            if until > now:
                wait = int((until - now).total_seconds()) + 1
                self._refuse(
                    session,
                    username,
                    client,
                    reason="locked",
                    wait=wait,
                    message=f"account '{username}' is locked until {until:%H:%M} UTC after repeated failed sign-ins; "
                    f"wait, or ask an admin to run `finmed users unlock {username}`",
                )
            user.locked_until = None  # the stated time has passed
            record_event(
                session,
                actor="system",
                action="user.unlocked",
                subject_type="user",
                subject_id=username,
                payload={"reason": "lock expired"},
            )
        if self.names.blocked(username):
            wait = self.names.retry_after(username)
            self._refuse(
                session,
                username,
                client,
                reason="name",
                wait=wait,
                message=f"too many failed sign-ins for '{username}'; try again in {wait} s",
            )
        if self.addresses.blocked(client):
            wait = self.addresses.retry_after(client)
            self._refuse(
                session,
                username,
                client,
                reason="address",
                wait=wait,
                message=f"too many failed sign-ins from this address; try again in {wait} s",
            )

    def count_failure(self, session: Session, *, username: str, client: str, user: User | None) -> None:
        """Count a wrong password; the failure that fills a known user's window locks the account."""
        self.names.fail(username)
        self.addresses.fail(client)
        if user is not None and self.names.blocked(username):
            user.locked_until = utcnow() + timedelta(minutes=self.lock_minutes)
            self.names.clear(username)  # the lock governs from here; an unlock starts a fresh window
            record_event(
                session,
                actor="system",
                action="user.locked",
                subject_type="user",
                subject_id=username,
                payload={"failures": self.per_name, "minutes": self.lock_minutes, "client": client},
            )

    def count_success(self, *, username: str) -> None:
        """Forget the name's failures after a correct password."""
        self.names.clear(username)

    def _refuse(self, session: Session, username: str, client: str, *, reason: str, wait: int, message: str) -> None:
        record_event(
            session,
            actor=username,
            action="login.refused",
            subject_type="user",
            subject_id=username,
            payload={"reason": reason, "client": client, "retry_after": wait},
        )
        raise RateLimited(message, retry_after=wait)


default_guard = SignInGuard()


def unlock_user(session: Session, *, username: str, actor: str = "system") -> datetime:
    """Lift the sign-in lock of `username` (an admin's `finmed users unlock NAME`); audited.

    Returns:
        The time the lock would have lifted by itself.

    Raises:
        NotFoundError: no such user.
        ConflictError: the account is not locked.
    """
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFoundError(f"no user named '{username}'; `finmed users list` shows them")
    if user.locked_until is None or _aware(user.locked_until) <= utcnow():
        raise ConflictError(f"user '{username}' is not locked")
    until = _aware(user.locked_until)
    user.locked_until = None
    record_event(
        session,
        actor=actor,
        action="user.unlocked",
        subject_type="user",
        subject_id=username,
        payload={"reason": "admin", "was_locked_until": until.isoformat()},
    )
    return until
