"""Registers the medical domain with core (entry point `finmed.plugins` in pyproject.toml)."""

from pathlib import Path

from core.plugins import DomainPlugin
from core.review.policies import load_policy

POLICY_FILE = Path(__file__).with_name("review_policy.yaml")

plugin = DomainPlugin(
    name="medical",
    review_policies={"default": lambda **overrides: load_policy(POLICY_FILE, overrides=overrides)},
    tables=("domains.medical.tables",),
)
