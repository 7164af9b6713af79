"""Which pages each role gets. A page a role may not open is not registered at all, so its URL leads nowhere
(Streamlit falls back to the Status page); each page's services check the role again."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from apps.auth import SignedIn
from apps.views import admin, audit, compliance, operations, status
from core.plugins import load_plugins


@dataclass(frozen=True)
class AppPage:
    """One page of the app: navigation group, title, URL path, the roles that see it (admin sees every page)."""

    group: str
    title: str
    url_path: str
    roles: tuple[str, ...]
    render: Callable[[], None]


CORE_PAGES = (
    AppPage("General", "Status", "status", (), status.render),
    AppPage("Compliance", "Review queue", "compliance", ("compliance",), compliance.render),
    AppPage("Compliance", "Audit trail", "audit", ("compliance",), audit.render),
    AppPage("Operations", "Operations", "operations", ("engineer",), operations.render),
    AppPage("Operations", "Users and API keys", "admin", (), admin.render),  # admin only
)


def _allowed(role: str, roles: tuple[str, ...], *, everyone: bool) -> bool:
    return role == "admin" or role in roles or (everyone and not roles)


def pages_for(user: SignedIn) -> list[AppPage]:
    """The pages `user` may open, core pages first, then each domain's (by plugin name)."""
    shown = [p for p in CORE_PAGES if _allowed(user.role, p.roles, everyone=p.url_path == "status")]
    for plugin in load_plugins():
        for domain_page in plugin.pages:
            if _allowed(user.role, tuple(domain_page.roles), everyone=False):
                shown.append(
                    AppPage(
                        plugin.name.capitalize(),
                        domain_page.title,
                        domain_page.url_path,
                        tuple(domain_page.roles),
                        lambda p=domain_page: p.render(user),
                    )
                )
    return shown
