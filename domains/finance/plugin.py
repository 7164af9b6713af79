"""Registers the finance domain with core (entry point `finmed.plugins` in pyproject.toml)."""

from pathlib import Path

from core.plugins import DomainPage, DomainPlugin
from core.review.policies import load_policy
from domains.finance.api import make_router
from domains.finance.bootstrap import bootstrap
from domains.finance.cli import app
from domains.finance.data_checks import DATA_CHECKS
from domains.finance.jobs import KIND as SCORE_KIND
from domains.finance.jobs import score_job
from domains.finance.page import ROLES as PAGE_ROLES
from domains.finance.page import render as render_page

POLICY_FILE = Path(__file__).with_name("review_policy.yaml")

plugin = DomainPlugin(
    name="finance",
    cli=app,
    api_routes=make_router,
    review_policies={"default": lambda **overrides: load_policy(POLICY_FILE, overrides=overrides)},
    tables=("domains.finance.tables",),
    bootstrap=bootstrap,
    pages=(DomainPage(title="Risk scoring", url_path="finance", roles=PAGE_ROLES, render=render_page),),
    data=DATA_CHECKS,
    job_kinds={SCORE_KIND: score_job},
)
