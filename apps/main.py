"""Streamlit entry: sign-in, then the pages the signed-in role may see."""

from __future__ import annotations

import streamlit as st

from apps.auth import current_user, login_page, logout
from apps.pages import compliance, finance, status

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
    if user.role in finance.ROLES:
        pages["Finance"] = [st.Page(finance.render, title="Risk scoring", url_path="finance")]
    if user.role in ("compliance", "admin"):
        pages["Compliance"] = [st.Page(compliance.render, title="Review queue", url_path="compliance")]
    st.navigation(pages).run()
