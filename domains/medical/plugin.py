"""Registers the medical domain with core (entry point `finmed.plugins` in pyproject.toml)."""

from pathlib import Path

from core.plugins import DomainPage, DomainPlugin
from core.review.policies import load_policy
from domains.medical.api import make_router
from domains.medical.bootstrap import bootstrap
from domains.medical.cli import app
from domains.medical.data_checks import DATA_CHECKS
from domains.medical.page import ROLES as PAGE_ROLES
from domains.medical.page import render as render_page

POLICY_FILE = Path(__file__).with_name("review_policy.yaml")

plugin = DomainPlugin(
    name="medical",
    cli=app,
    api_routes=make_router,
    review_policies={"default": lambda **overrides: load_policy(POLICY_FILE, overrides=overrides)},
    data=DATA_CHECKS,
    tables=("domains.medical.tables",),
    pages=(DomainPage(title="Radiology worklist", url_path="medical", roles=PAGE_ROLES, render=render_page),),
    bootstrap=bootstrap,
    extras={"labeler": "domains.medical.labeler:label_report"},
)
