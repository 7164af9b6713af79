"""Streamlit entry: sign-in, then the pages the signed-in role may see."""

from __future__ import annotations

import streamlit as st

from apps.auth import current_user, login_page, logout
from apps.pages import compliance, status
from core.plugins import load_plugins

st.set_page_config(page_title="finmed", layout="wide")

user = current_user()
if user is None:
    st.navigation([st.Page(login_page, title="Sign in", url_path="login")], position="hidden").run()
else:
    with st.sidebar:
        st.markdown(f"Signed in as **{user.username}** ({user.role})")
        if st.button("Sign out"):
            logout()
    pages = {"General": [st.Page(status.render, title="Status", url_path="status", default=True)]}
    for plugin in load_plugins():  # each domain's pages, for the roles it names
        allowed = [page for page in plugin.pages if user.role in (*page.roles, "admin")]
        if allowed:
            pages[plugin.name.capitalize()] = [
                st.Page(lambda page=page: page.render(user), title=page.title, url_path=page.url_path)
                for page in allowed
            ]
    if user.role in ("compliance", "admin"):
        pages["Compliance"] = [st.Page(compliance.render, title="Review queue", url_path="compliance")]
    st.navigation(pages).run()
