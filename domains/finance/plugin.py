"""Registers the finance domain with core (entry point `finmed.plugins` in pyproject.toml)."""

from core.plugins import DomainPlugin
from domains.finance.api import make_router
from domains.finance.cli import app

plugin = DomainPlugin(name="finance", cli=app, api_routes=make_router)
