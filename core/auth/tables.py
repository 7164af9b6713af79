"""Table of sign-in sessions: one row per signed cookie handed out, so signing out revokes it on the server."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, utcnow


class SignInSession(Base):
    """A sign-in of one user in one browser; the cookie carries `token_id`, signed and time-stamped.

    A token is valid while its signature checks, it is younger than the session lifetime, this row exists with
    `revoked_at` unset and `expires_at` in the future, and its user is active.
    """

    __tablename__ = "sign_in_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_id: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
