"""Routing policies: the shipped YAML files load and route as documented; bad files are named precisely."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import NotFoundError, ValidationError
from core.review.policies import domain_policy, load_policy, parse_policy, route, sample_draw

from .helpers import REPO, finance_policy, medical_policy

HEAD = "name: x\nversion: 1\ndomain: finance\nrules:\n"
SHIPPED = sorted((REPO / "domains").glob("*/review_policy.yaml"))


def test_every_shipped_policy_loads() -> None:
    assert {p.parent.name for p in SHIPPED} == {"finance", "medical"}
    for path in SHIPPED:
        policy = load_policy(path)
        assert policy.domain == path.parent.name and policy.version >= 1 and len(policy.content_hash) == 64


@pytest.mark.parametrize(
    ("parsed", "queue", "reasons"),
    [
        (None, "analyst", ("unparseable_output",)),
        ({"risk_level": 5, "numeric_score": 0.95}, "analyst", ("high_risk",)),
        ({"risk_level": 3, "numeric_score": 0.1}, "analyst", ("high_risk", "score_disagreement")),
        ({"risk_level": 0, "numeric_score": 0.9}, "analyst", ("score_disagreement",)),
        ({"risk_level": 1, "numeric_score": 0.2}, None, ()),
        ({"risk_level": "high"}, None, ()),  # a wrong type matches no rule rather than crashing
    ],
)
def test_finance_routing(parsed: dict | None, queue: str | None, reasons: tuple) -> None:
    policy = finance_policy(audit_rate=0.0)
    routed = route(policy, parsed=parsed, output_id=7)
    assert (routed.queue, routed.reasons) == (queue, reasons) if queue else routed is None


def test_audit_sample_is_deterministic_and_near_the_rate() -> None:
    policy = finance_policy()
    assert policy.params["audit_rate"] == 0.05
    low = {"risk_level": 1, "numeric_score": 0.2}
    picked = [i for i in range(20_000) if route(policy, parsed=low, output_id=i)]
    assert 0.04 < len(picked) / 20_000 < 0.06
    assert all(route(policy, parsed=low, output_id=i).queue == "compliance" for i in picked[:20])
    assert picked == [i for i in range(20_000) if route(policy, parsed=low, output_id=i)]  # same ids every time
    assert sample_draw("finance-default", 1) == sample_draw("finance-default", 1)
    everything = finance_policy(audit_rate=1.0)
    assert route(everything, parsed=low, output_id=3).reasons == ("low_risk_audit_sample",)
    assert everything.content_hash != policy.content_hash  # overrides are part of the stored identity


def test_medical_routing() -> None:
    policy = medical_policy()
    assert route(policy, parsed={"kind": "draft"}, output_id=1).queue == "radiologist"
    assert route(policy, parsed=None, output_id=1).queue == "radiologist"  # an unparseable draft still goes
    signed = [i for i in range(2_000) if route(policy, parsed={"kind": "signed"}, output_id=i)]
    assert 0 < len(signed) < 200
    assert route(medical_policy(signed_audit_rate=1.0), parsed={"kind": "signed"}, output_id=1).queue == "compliance"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("name: x\nversion: 1\ndomain: finance\nrules: [", "not valid YAML"),
        ("name: x\ndomain: finance\nrules: []", "missing `version`"),
        ("name: x\nversion: 0\ndomain: finance\nrules: []", "`version` must be a positive integer"),
        ("name: x\nversion: 1\ndomain: finance\nrules: []", "`rules` is empty"),
        (
            "name: x\nversion: 1\ndomain: finance\nrules:\n- {name: r, queue: boss, when: {unparseable: true}}",
            "rule 1 (r): queue must be one of",
        ),
        (
            HEAD + "- {name: r, queue: analyst, when: {field: a, op: '~', value: 1}}",
            "rule 1 (r): unknown op '~'",
        ),
        (
            HEAD + "- {name: r, queue: analyst, when: {field: a, op: '>', value: $t}}",
            "rule 1 (r): unknown parameter '$t'",
        ),
        (
            "name: x\nversion: 1\ndomain: finance\nrules:\n- {name: r, queue: analyst, when: {sample: 2}}",
            "between 0 and 1",
        ),
        (
            "name: x\nversion: 1\ndomain: finance\nrules:\n- {name: r, queue: analyst, when: {foo: 1}}",
            "a condition needs",
        ),
    ],
)
def test_bad_policy_is_named(text: str, fragment: str) -> None:
    with pytest.raises(
        ValidationError, match=f"bad.yaml: .*{fragment}".replace("(", r"\(").replace(")", r"\)").replace("$", r"\$")
    ):
        parse_policy(text, source="bad.yaml")


def test_missing_file_and_unknown_override(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="nope.yaml does not exist"):
        load_policy(tmp_path / "nope.yaml")
    with pytest.raises(ValidationError, match="cannot override unknown parameter 'rate'"):
        finance_policy(rate=0.1)


def test_domain_policy_through_the_plugin_seam() -> None:
    from core.plugins import DomainPlugin

    path = REPO / "domains" / "finance" / "review_policy.yaml"
    plugin = DomainPlugin(name="finance", review_policies={"default": lambda **o: load_policy(path, overrides=o)})
    policy = domain_policy("finance", plugins=[plugin], audit_rate=0.2)
    assert policy.name == "finance-default" and policy.params["audit_rate"] == 0.2
    with pytest.raises(NotFoundError, match="registers no review policy 'strict' \\(registered: default\\)"):
        domain_policy("finance", "strict", plugins=[plugin])
    with pytest.raises(NotFoundError, match="no domain plugin named 'legal'"):
        domain_policy("legal", plugins=[plugin])
