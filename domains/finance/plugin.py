"""Registers the finance domain with core (entry point `finmed.plugins` in pyproject.toml)."""

from pathlib import Path

from core.plugins import DomainPlugin
from core.review.policies import load_policy
from domains.finance.api import make_router
from domains.finance.cli import app

POLICY_FILE = Path(__file__).with_name("review_policy.yaml")

plugin = DomainPlugin(
    name="finance",
    cli=app,
    api_routes=make_router,
    review_policies={"default": lambda **overrides: load_policy(POLICY_FILE, overrides=overrides)},
)
