"""Role gating: each role's navigation, and every page URL opened by every role (a page a role may not see is not
registered, so its URL shows the Status page instead)."""

from __future__ import annotations

import pytest

from apps.auth import SignedIn
from apps.navigation import CORE_PAGES, pages_for
from core.db.tables import ROLES
from core.plugins import load_plugins

from .conftest import open_app

ALL_PAGES = [(p.url_path, p.title, p.roles) for p in CORE_PAGES] + [
    (p.url_path, p.title, tuple(p.roles)) for plugin in load_plugins() for p in plugin.pages
]


def test_navigation_by_role() -> None:
    urls = {role: {p.url_path for p in pages_for(SignedIn(1, role, role))} for role in ROLES}
    assert {"compliance", "audit", "operations", "admin"}.isdisjoint(urls["analyst"])
    assert {"compliance", "audit"} <= urls["compliance"] and "operations" not in urls["compliance"]
    assert "operations" in urls["engineer"] and "admin" not in urls["engineer"]
    assert {p[0] for p in ALL_PAGES} == urls["admin"]
    for url, _title, roles in ALL_PAGES:
        if "radiologist" in roles and "analyst" not in roles:
            assert url not in urls["analyst"]


def test_analyst_reaches_no_radiologist_page() -> None:
    radiology = [p for p in ALL_PAGES if "radiologist" in p[2]]
    if not radiology:
        pytest.skip("no domain registers a radiologist page yet (the medical plugin adds it; the lead wires it)")
    urls = {p.url_path for p in pages_for(SignedIn(1, "analyst", "analyst"))}
    assert all(url not in urls for url, _t, roles in radiology if "analyst" not in roles)


def test_analyst_reaches_no_other_roles_page_by_url(people: dict[str, SignedIn]) -> None:
    for url, title, roles in ALL_PAGES:
        if "analyst" in roles or url == "status":
            continue
        at = open_app(people["analyst"], url)
        assert not at.exception, (url, at.exception)
        assert [t.value for t in at.title] == ["Status"], (url, title)


@pytest.mark.parametrize(
    ("role", "url", "title"),
    [
        ("compliance", "compliance", "Review queue"),
        ("compliance", "audit", "Audit trail"),
        ("engineer", "operations", "Operations"),
        ("admin", "admin", "Users and API keys"),
        ("compliance", "operations", "Status"),
        ("engineer", "audit", "Status"),
    ],
)
def test_url_opens_a_page_only_for_its_roles(people: dict[str, SignedIn], role: str, url: str, title: str) -> None:
    at = open_app(people[role], url)
    assert not at.exception and [t.value for t in at.title] == [title]


def test_signed_out_sees_only_the_sign_in_form(people: dict[str, SignedIn]) -> None:
    from streamlit.testing.v1 import AppTest
    from streamlit.util import calc_hash

    from .conftest import APP

    at = AppTest.from_file(APP, default_timeout=60)
    at._page_hash = calc_hash("compliance")
    at.run()
    assert [t.value for t in at.title] == ["finmed"] and at.button[0].label == "Sign in"
