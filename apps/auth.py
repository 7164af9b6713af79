"""Sign-in for the app: users from the database, checked by the same service the CLI and API use.

Failed sign-ins are throttled by that service (core.auth.lockout): per user name and browser address, with an
account lock after repeated failures; the refusal is shown as one line saying when to retry.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from core.auth.users import authenticate
from core.db.engine import get_engine, session_scope
from core.db.migrate import require_current
from core.errors import FinmedError, RateLimited

SESSION_KEY = "finmed_user"


@dataclass(frozen=True)
class SignedIn:
    """The signed-in person as the pages see them (no ORM object crosses Streamlit reruns)."""

    id: int
    username: str
    role: str


def current_user() -> SignedIn | None:
    """The signed-in user of this browser session, or None."""
    return st.session_state.get(SESSION_KEY)


def _client() -> str:
    """The browser's address as Streamlit sees it ("" for a local browser; a proxy's address behind one)."""
    try:
        address = st.context.ip_address
    except Exception:  # noqa: BLE001  (bare scripts have no client context)
        return ""
    return address if isinstance(address, str) else ""  # AppTest hands back a stand-in object


def login_page() -> None:
    """The sign-in form; on success stores the user in the session and reruns into the app."""
    st.title("finmed")
    st.caption("Domain LLM suite for finance and medicine. Sign in to continue.")
    with st.form("login"):
        username = st.text_input("Username")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in")
    if not submitted:
        return
    try:
        engine = get_engine()
        require_current(engine)
        with session_scope(engine) as session:
            try:
                user = authenticate(session, username=username.strip(), password=password, client=_client())
            except RateLimited as exc:  # refused unchecked; the session still commits the refusal's audit event
                refused: RateLimited | None = exc
                user = None
            else:
                refused = None
            signed = SignedIn(user.id, user.username, user.role) if user else None
    except FinmedError as exc:
        st.error(str(exc))
        return
    if refused is not None:
        st.error(str(refused))
        return
    if signed is None:
        st.error("Unknown user or wrong password.")
        return
    st.session_state[SESSION_KEY] = signed
    st.rerun()


def logout() -> None:
    """Forget the signed-in user and show the sign-in form again."""
    st.session_state.pop(SESSION_KEY, None)
    st.rerun()
