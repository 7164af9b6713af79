"""Streamlit entry: sign-in (kept across reloads by a session cookie), then the pages the signed-in role may see."""

from __future__ import annotations

import streamlit as st

from apps.auth import current_user, keep_cookie, login_page, logout
from apps.navigation import pages_for

st.set_page_config(page_title="finmed", layout="wide")

user = current_user()
if user is None:
    st.navigation([st.Page(login_page, title="Sign in", url_path="login")], position="hidden").run()
else:
    with st.sidebar:
        st.markdown(f"Signed in as **{user.username}** ({user.role})")
        if st.button("Sign out", key="sign_out"):
            logout()
        keep_cookie()
    groups: dict[str, list[st.Page]] = {}
    for app_page in pages_for(user):
        groups.setdefault(app_page.group, []).append(
            st.Page(
                app_page.render,
                title=app_page.title,
                url_path=app_page.url_path,
                default=app_page.url_path == "status",
            )
        )
    st.navigation(groups).run()
