"""The strict risk parser: both languages accepted, anything else a failure (never a guessed level)."""

import pytest

from domains.finance.parser import format_risk, parse_risk


@pytest.mark.parametrize(
    ("answer", "level", "reasons"),
    [
        ("Risk level: 3; Basis: large_amount, night_time", 3, ["large_amount", "night_time"]),
        ("  risk level:0; basis: none.\n", 0, []),
        ("Risk level: 5; Basis: card_testing", 5, ["card_testing"]),
        ("风险等级:4, 依据:大额转账,异地登录,夜间操作", 4, ["large_amount", "new_location", "night_time"]),
        ("风险等级：2，依据：new_merchant", 2, ["new_merchant"]),
        ("风险等级:0, 依据:无", 0, []),
    ],
)
def test_accepts(answer: str, level: int, reasons: list[str]) -> None:
    parsed = parse_risk(answer)
    assert parsed.ok and parsed.level == level and parsed.reasons == reasons


@pytest.mark.parametrize(
    "answer",
    [
        "",
        "Risk level: 6; Basis: large_amount",
        "Risk level: high; Basis: large_amount",
        "Risk level: 3; Basis: suspicious vibes",
        "The risk level is 3 because of large_amount",
        "Risk level: 3; Basis: large_amount\nRisk level: 0; Basis: none",
        "Sure! Risk level: 3; Basis: large_amount",
        "风险等级:9, 依据:大额转账",
        "风险等级:3, 依据:未知特征",
        "Risk level: 3",
    ],
)
def test_rejects(answer: str) -> None:
    parsed = parse_risk(answer)
    assert not parsed.ok and parsed.level is None and parsed.error


@pytest.mark.parametrize("language", ["en", "zh"])
def test_format_round_trips(language: str) -> None:
    text = format_risk(4, ["large_amount", "night_time"], language=language)
    parsed = parse_risk(text)
    assert parsed.level == 4 and parsed.reasons == ["large_amount", "night_time"]
    assert parse_risk(format_risk(0, [], language=language)).reasons == []
