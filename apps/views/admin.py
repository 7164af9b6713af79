"""Users and API keys page (admin): create users, enable or disable them (revoking their sessions), and the model
server's API keys (shown once when created). Calls core.auth.admin only."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from apps.auth import SignedIn
from apps.common import acting, fmt_time, page
from core.auth import admin
from core.db.tables import ROLES
from core.errors import FinmedError


def _users(signed: SignedIn) -> None:
    st.subheader("Users")
    with acting(signed) as (session, user):
        rows = admin.users(session, user=user)
        frame = pd.DataFrame(
            [
                {
                    "username": u.username,
                    "role": u.role,
                    "active": u.active,
                    "created": fmt_time(u.created_at),
                    "last sign-in": fmt_time(u.last_login_at),
                }
                for u in rows
            ]
        )
    st.dataframe(frame, hide_index=True, width="stretch")
    with st.form("admin_new_user", clear_on_submit=True):
        cols = st.columns(3)
        username = cols[0].text_input("Username", key="admin_username")
        role = cols[1].selectbox("Role", ROLES, key="admin_role")
        password = cols[2].text_input("Password (at least 8 characters)", type="password", key="admin_password")
        if st.form_submit_button("Create user"):
            try:
                with acting(signed) as (session, user):
                    admin.add_user(session, user=user, username=username.strip(), role=role, password=password)
                st.success(f"User {username.strip()} ({role}) created.")
            except FinmedError as exc:
                st.error(str(exc))
    cols = st.columns([2, 1, 1])
    who = cols[0].selectbox("User", frame["username"].tolist(), key="admin_who")
    for col, active, label in ((cols[1], False, "Disable"), (cols[2], True, "Enable")):
        if col.button(label, key=f"admin_{label.lower()}"):
            try:
                with acting(signed) as (session, user):
                    admin.set_active(session, user=user, username=who, active=active)
                st.success(f"{who} {'enabled' if active else 'disabled (signed out everywhere)'}.")
            except FinmedError as exc:
                st.error(str(exc))


def _keys(signed: SignedIn) -> None:
    st.subheader("API keys of the model server")
    with acting(signed) as (session, user):
        rows = admin.api_keys(session, user=user)
        frame = pd.DataFrame(
            [
                {
                    "client": k.name,
                    "hint": k.key_hint + "…",
                    "active": k.active,
                    "created": fmt_time(k.created_at),
                    "revoked": fmt_time(k.revoked_at),
                }
                for k in rows
            ]
        )
    if frame.empty:
        st.info("No API keys yet: create one for each client of `finmed serve`.")
    else:
        st.dataframe(frame, hide_index=True, width="stretch")
    cols = st.columns([2, 1, 1])
    name = cols[0].text_input("Client name", key="admin_key_name")
    if cols[1].button("Create key", key="admin_key_add"):
        try:
            with acting(signed) as (session, user):
                key = admin.add_api_key(session, user=user, name=name)
            st.success("Key created; copy it now, it is not shown again:")
            st.code(key)
        except FinmedError as exc:
            st.error(str(exc))
    if cols[2].button("Revoke key", key="admin_key_revoke"):
        try:
            with acting(signed) as (session, user):
                admin.revoke_api_key(session, user=user, name=name.strip())
            st.success(f"Key of {name.strip()} revoked.")
        except FinmedError as exc:
            st.error(str(exc))


@page
def render(signed: SignedIn) -> None:
    """Draw users, then API keys."""
    st.title("Users and API keys")
    _users(signed)
    _keys(signed)
