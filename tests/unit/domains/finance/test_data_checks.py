"""Finance's data checks: each reason code fires on a record that has the problem and not on one that lacks it;
real training records from the synthetic history pass both tiers (no false alarms)."""

from __future__ import annotations

import copy
import re

import pytest

from core.data.records import Record, parse_record
from domains.finance.data_checks import DATA_CHECKS, REASON_CODES, check_codes, check_consistency, mcc_group
from domains.finance.synthetic import generate
from domains.finance.training import training_records


@pytest.fixture(scope="module")
def records() -> list[dict]:
    frame = generate(12, seed=3, days=15)
    return training_records(frame, frame["is_fraud"].to_numpy())


@pytest.fixture(scope="module")
def quiet(records: list[dict]) -> dict:
    """A daytime record with no rule signal and answer level 0."""
    for rec in records:
        user = rec["messages"][-2]["content"]
        hour = int(re.search(r"local hour (\d+)", user).group(1))
        if "rule signals: none" in user and hour >= 8 and rec["meta"]["level"] == 0:
            return rec
    raise AssertionError("no quiet record in the synthetic history")


def codes(check, obj: dict) -> list[tuple[str, bool]]:  # noqa: ANN001
    return [(p.code, p.drop) for p in check(parse_record(obj))]


def with_answer(obj: dict, answer: str) -> dict:
    out = copy.deepcopy(obj)
    out["messages"][-1]["content"] = answer
    return out


def with_user(obj: dict, old: str, new: str) -> dict:
    out = copy.deepcopy(obj)
    assert old in out["messages"][-2]["content"]
    out["messages"][-2]["content"] = out["messages"][-2]["content"].replace(old, new)
    return out


def test_every_code_is_documented() -> None:
    assert set(DATA_CHECKS.reason_codes) == set(REASON_CODES)


def test_real_records_pass_both_tiers(records: list[dict]) -> None:
    for obj in records:
        record = parse_record(obj)
        assert list(check_consistency(record)) == [], obj["messages"][-2]["content"]
        assert list(check_codes(record)) == []


def test_reason_unsupported(quiet: dict) -> None:
    assert codes(check_consistency, with_answer(quiet, "Risk level: 3; Basis: night_time")) == [
        ("reason_unsupported", True)
    ]
    night = with_user(quiet, re.search(r"local hour \d+", quiet["messages"][-2]["content"]).group(0), "local hour 2")
    night = with_user(night, "rule signals: none", "rule signals: night_time")
    assert codes(check_consistency, with_answer(night, "Risk level: 3; Basis: night_time")) == []


def test_level_without_risk_feature(quiet: dict) -> None:
    assert codes(check_consistency, with_answer(quiet, "Risk level: 5; Basis: none")) == [
        ("level_without_risk_feature", True)
    ]
    assert codes(check_consistency, with_answer(quiet, "Risk level: 1; Basis: none")) == []


def test_signals_disagree(quiet: dict) -> None:
    bad = with_user(quiet, "rule signals: none", "rule signals: large_amount")
    assert codes(check_consistency, bad) == [("signals_disagree", True)]


def test_answer_unparseable_and_features_missing(quiet: dict) -> None:
    assert codes(check_consistency, with_answer(quiet, "Risk level: seven")) == [("answer_unparseable", True)]
    bare = {
        "messages": [
            {"role": "user", "content": "Is this risky?"},
            {"role": "assistant", "content": "Risk level: 2; Basis: none"},
        ]
    }
    assert codes(check_consistency, bare) == [("features_missing", True)]
    chat = {
        "messages": [
            {"role": "user", "content": "What is an IBAN?"},
            {"role": "assistant", "content": "A bank account number."},
        ]
    }
    assert codes(check_consistency, chat) == [("not_risk_record", False)]


@pytest.mark.parametrize(
    ("old", "new", "meta", "expected"),
    [
        (None, None, {"currency": "XYZ"}, "unknown_currency"),
        (None, None, {"currency": "DEM"}, None),  # withdrawn (ISO 4217 list three), still a real code
        (None, None, {"country": "XX"}, "unknown_country"),
        (None, None, {"country": "YU"}, None),  # withdrawn (ISO 3166-3)
        (None, None, {"country": "DEU"}, None),
        (None, None, {"mcc": "0000"}, "invalid_mcc"),
        (None, None, {"mcc": "54a1"}, "invalid_mcc"),
        (None, None, {"mcc": "5411"}, None),
        ("channel:", "MCC 12345; channel:", {}, "invalid_mcc"),
    ],
)
def test_codes(quiet: dict, old: str | None, new: str | None, meta: dict, expected: str | None) -> None:
    obj = with_user(quiet, old, new) if old else copy.deepcopy(quiet)
    obj["meta"].update(meta)
    assert codes(check_codes, obj) == ([(expected, True)] if expected else [])


def test_currency_in_prompt(quiet: dict) -> None:
    currency = re.search(r"amount: [\d.]+ ([A-Z]{3})", quiet["messages"][-2]["content"]).group(1)
    assert codes(check_codes, with_user(quiet, f" {currency} (", " QQQ (")) == [("unknown_currency", True)]
    assert mcc_group("5411") == "retail outlet services" and mcc_group("0000") is None


def test_description_span_is_the_fenced_text(quiet: dict) -> None:
    record: Record = parse_record(quiet)
    (span,) = DATA_CHECKS.free_text(record)
    text = record.messages[span.message].content[span.start : span.end]
    assert text and '"' not in text and text in quiet["messages"][-2]["content"]
