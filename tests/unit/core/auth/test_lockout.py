"""Sign-in throttling: the 11th wrong password in a minute is refused unchecked, audited, and the account locked
until a stated time or an admin's unlock; on SQLite and PostgreSQL (each test rolled back)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.audit.tables import AuditEvent
from core.auth.lockout import SignInGuard, unlock_user
from core.auth.users import authenticate, check_password_policy, create_user
from core.db.base import utcnow
from core.errors import ConflictError, NotFoundError, RateLimited, ValidationError


def _actions(session: Session) -> list[str]:
    return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def test_eleventh_wrong_password_is_refused_unchecked_and_audited(db_session: Session) -> None:
    guard = SignInGuard()
    user = create_user(db_session, username="dora", role="analyst", password="right-password")
    for _ in range(10):
        assert authenticate(db_session, username="dora", password="wrong-password", guard=guard) is None
    assert user.locked_until is not None and user.locked_until > utcnow() + timedelta(minutes=14)
    assert _actions(db_session)[-2:] == ["login.failed", "user.locked"]

    with pytest.raises(RateLimited, match="locked"):  # the 11th wrong password
        authenticate(db_session, username="dora", password="wrong-password", guard=guard)
    assert _actions(db_session)[-1] == "login.refused"  # audited, and no login.failed: it was not checked
    # The right password is refused too: it was not checked (a check would have let it in and audited that).
    with pytest.raises(RateLimited, match="account 'dora' is locked until .* UTC.*finmed users unlock dora") as err:
        authenticate(db_session, username="dora", password="right-password", guard=guard)
    assert _actions(db_session)[-1] == "login.refused"
    assert 14 * 60 < err.value.retry_after <= 15 * 60 + 1
    refused = db_session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert refused is not None and refused.action == "login.refused" and refused.subject_id == "dora"
    assert refused.payload["reason"] == "locked"

    assert unlock_user(db_session, username="dora", actor="admin-cli") > utcnow()
    assert _actions(db_session)[-1] == "user.unlocked"
    assert authenticate(db_session, username="dora", password="right-password", guard=guard) is user
    with pytest.raises(ConflictError, match="not locked"):
        unlock_user(db_session, username="dora")
    with pytest.raises(NotFoundError, match="no user named 'ghost'"):
        unlock_user(db_session, username="ghost")


def test_lock_lifts_itself_after_the_stated_time(db_session: Session) -> None:
    guard = SignInGuard()
    user = create_user(db_session, username="eli", role="engineer", password="right-password")
    user.locked_until = utcnow() - timedelta(seconds=1)
    assert authenticate(db_session, username="eli", password="right-password", guard=guard) is user
    assert user.locked_until is None
    assert _actions(db_session)[-2:] == ["user.unlocked", "login.succeeded"]


def test_unknown_names_and_addresses_are_throttled_too(db_session: Session) -> None:
    guard = SignInGuard(per_name=3, per_address=5)
    here = {"client": "10.0.0.7", "guard": guard}
    for _ in range(3):
        assert authenticate(db_session, username="nobody", password="guess-guess", **here) is None
    with pytest.raises(RateLimited, match="too many failed sign-ins for 'nobody'"):
        authenticate(db_session, username="nobody", password="guess-guess", **here)
    for name in ("x1", "x2"):  # 3 + 2 failures from one address fill its window of 5
        assert authenticate(db_session, username=name, password="guess-guess", **here) is None
    assert authenticate(db_session, username="x3", password="guess-guess", client="10.0.0.8", guard=guard) is None
    with pytest.raises(RateLimited, match="from this address"):
        authenticate(db_session, username="x4", password="guess-guess", **here)
    refused = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "login.refused")).all()
    assert [e.payload["reason"] for e in refused] == ["name", "address"]


def test_a_success_clears_the_name_window(db_session: Session) -> None:
    guard = SignInGuard(per_name=3)
    user = create_user(db_session, username="fay", role="analyst", password="right-password")
    for _ in range(5):  # two failures, one success, repeatedly: never three failures in a row
        assert authenticate(db_session, username="fay", password="nope-nope-nope", guard=guard) is None
        assert authenticate(db_session, username="fay", password="nope-nope-nope", guard=guard) is None
        assert authenticate(db_session, username="fay", password="right-password", guard=guard) is user
    assert user.locked_until is None


@pytest.mark.parametrize(
    ("password", "fragment"),
    [
        ("short-pw", "too short: at least 10"),
        ("x" * 257, "too long: at most 256"),
        ("abababababab", "at least 4 different"),
        ("my-GRETA-password", "contains the user name"),
    ],
)
def test_password_policy(password: str, fragment: str) -> None:
    with pytest.raises(ValidationError, match=f"password for 'greta' .*{fragment}"):
        check_password_policy(password, username="greta")


def test_policy_applies_when_creating_users(db_session: Session) -> None:
    with pytest.raises(ValidationError, match="contains the user name"):
        create_user(db_session, username="henry", role="analyst", password="henry-2026-ok")
    check_password_policy("correct horse battery", username="henry")
