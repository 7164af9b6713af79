"""Each domain registers itself with core through its entry point, review policy included."""

from core.plugins import load_plugins
from core.review.policies import domain_policy


def test_domains_are_registered() -> None:
    assert {p.name for p in load_plugins()} >= {"finance", "medical"}


def test_medical_policy_is_reachable_through_the_plugin() -> None:
    policy = domain_policy("medical")
    assert policy.name and policy.version


def test_finance_policy_is_reachable_through_the_plugin() -> None:
    policy = domain_policy("finance")
    assert policy.name and policy.version
