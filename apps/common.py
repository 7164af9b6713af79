"""What every page shares: a session acting as the signed-in user, errors shown as one message, job panels."""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import streamlit as st
from sqlalchemy.orm import Session

from apps.auth import SignedIn, current_user
from core.auth.roles import acting_user
from core.db.engine import get_engine, session_scope
from core.errors import FinmedError
from core.settings import get_settings

if TYPE_CHECKING:
    from core.db.tables import User


@contextmanager
def acting(signed: SignedIn) -> Iterator[tuple[Session, User]]:
    """A session (committed at the end) and the signed-in user's row in it."""
    with session_scope(get_engine()) as session:
        yield session, acting_user(session, user_id=signed.id)


def page(render: Callable[[SignedIn], None]) -> Callable[[], None]:
    """Wrap a page's render(user): sign-in required; project errors become one error box, others one line.

    A bug still never shows a traceback to the user (it goes to the server's stderr) unless FINMED_DEBUG is set.
    """

    @functools.wraps(render)
    def wrapper() -> None:
        signed = current_user()
        if signed is None:
            st.error("Sign in first.")
            return
        try:
            render(signed)
        except FinmedError as exc:
            st.error(str(exc))
        except Exception as exc:
            if get_settings().debug:
                raise
            traceback.print_exc(file=sys.stderr)
            st.error(f"Something went wrong ({type(exc).__name__}: {exc}). The server log has the details.")

    return wrapper


def fmt_time(value: Any) -> str:
    """A timestamp as 'YYYY-MM-DD HH:MM:SS UTC', or '-'."""
    return f"{value:%Y-%m-%d %H:%M:%S} UTC" if value is not None else "-"
