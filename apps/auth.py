"""Sign-in for the app: users from the database, checked by the same service the CLI and API use, kept across
reloads by a signed, expiring session cookie that sign-out revokes on the server (core.auth.sessions).
Failed sign-ins are throttled by that service (core.auth.lockout): per user name and browser address, with an
account lock after repeated failures; the refusal is shown as one line saying when to retry.

Streamlit reads cookies (`st.context.cookies`, those the browser sent when the tab connected) but has no call that
sets one; the cookie is written by a two-line script through `st.html(..., unsafe_allow_javascript=True)`, Streamlit's
own element, which needs no component bundle or network. A cookie written by script cannot be HttpOnly; the token
is signed, expires, and is useless once revoked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import streamlit as st

from core.auth import sessions
from core.auth.users import authenticate
from core.db.engine import get_engine, session_scope
from core.db.migrate import require_current
from core.errors import FinmedError, RateLimited

SESSION_KEY = "finmed_user"
TOKEN_KEY = "finmed_token"
CLEAR_KEY = "finmed_clear_cookie"
COOKIE = "finmed_session"


@dataclass(frozen=True)
class SignedIn:
    """The signed-in person as the pages see them (no ORM object crosses Streamlit reruns)."""

    id: int
    username: str
    role: str


def _cookie_token() -> str | None:
    try:
        return st.context.cookies.get(COOKIE)
    except Exception:  # noqa: BLE001  (no browser connection, e.g. AppTest: there is no cookie)
        return None


def current_user() -> SignedIn | None:
    """The signed-in user of this browser session: from the session, else from a valid session cookie."""
    signed = st.session_state.get(SESSION_KEY)
    if signed is not None:
        return signed
    token = None if st.session_state.get(CLEAR_KEY) else _cookie_token()
    if not token:
        return None
    try:
        with session_scope(get_engine()) as session:
            user = sessions.resolve(session, token=token)
            signed = SignedIn(user.id, user.username, user.role) if user else None
    except FinmedError:
        return None
    if signed is not None:
        st.session_state[SESSION_KEY] = signed
        st.session_state[TOKEN_KEY] = token
    return signed


def _write_cookie(value: str, max_age: int) -> None:
    st.html(
        f"<script>document.cookie = {json.dumps(f'{COOKIE}={value}; Path=/; Max-Age={max_age}; SameSite=Strict')};"
        "</script>",
        unsafe_allow_javascript=True,
    )


def keep_cookie() -> None:
    """Write the session cookie into the browser when it does not hold this session's token yet."""
    token = st.session_state.get(TOKEN_KEY)
    if token and _cookie_token() != token:
        _write_cookie(token, int(sessions.lifetime().total_seconds()))


def _client() -> str:
    """The browser's address as Streamlit sees it ("" for a local browser; a proxy's address behind one)."""
    try:
        address = st.context.ip_address
    except Exception:  # noqa: BLE001  (bare scripts have no client context)
        return ""
    return address if isinstance(address, str) else ""  # AppTest hands back a stand-in object


def login_page() -> None:
    """The sign-in form; on success opens a session (cookie) and reruns into the app."""
    if st.session_state.get(CLEAR_KEY):
        _write_cookie("", 0)
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
            token = sessions.start_session(session, user=user) if user else None
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
    st.session_state[TOKEN_KEY] = token
    st.session_state.pop(CLEAR_KEY, None)
    st.rerun()


def logout() -> None:
    """Revoke the session on the server, forget the user, clear the cookie and show the sign-in form again."""
    token = st.session_state.get(TOKEN_KEY) or _cookie_token()
    try:
        with session_scope(get_engine()) as session:
            sessions.end_session(session, token=token)
    except FinmedError as exc:
        st.error(f"sign-out could not reach the database: {exc}")
    for key in (SESSION_KEY, TOKEN_KEY):
        st.session_state.pop(key, None)
    st.session_state[CLEAR_KEY] = True
    st.rerun()
