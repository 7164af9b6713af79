"""Medical's data checks: terms resolve against the shipped vocabularies, ICD-10-CM codes are valid, and the
impression-vs-findings tier runs on the real finding labeler."""

from __future__ import annotations

from core.data.records import parse_record
from domains.medical.data_checks import DATA_CHECKS, REASON_CODES, check_impression, check_terms, findings_text


def study(findings: str, impression: str, **meta: object) -> dict:
    user = f"INDICATION: cough.\nFINDINGS: {findings}\nWrite the impression."
    return {
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": impression}],
        "meta": dict(meta),
    }


def problems(check, obj: dict) -> list[tuple[str, bool]]:  # noqa: ANN001
    return [(p.code, p.drop) for p in check(parse_record(obj))]


GOOD = study("Small right pleural effusion. No pneumothorax. Heart size normal.", "Small right pleural effusion.")


def test_every_code_is_documented() -> None:
    assert set(DATA_CHECKS.reason_codes) == set(REASON_CODES)


def test_terms_resolve_against_the_vocabularies() -> None:
    assert problems(check_terms, GOOD) == []
    compound = study("Normal cardiomediastinal silhouette. Bibasilar atelectasis.", "Bibasilar atelectasis.")
    assert problems(check_terms, compound) == []
    typo = study("Mild cardiomegally. No effusion.", "Cardiomegally.")
    assert problems(check_terms, typo) == [("unknown_term", True)]
    invented = study("Right pneumothoraxitis.", "Pneumothoraxitis.")
    assert problems(check_terms, invented) == [("unknown_term", True)]


def test_icd10_codes_are_valid() -> None:
    assert problems(check_terms, study("Right lower lobe consolidation.", "Pneumonia (J18.9).")) == []
    assert problems(check_terms, study("Right lower lobe consolidation.", "Pneumonia (J18.99).")) == [
        ("invalid_icd10", True)
    ]
    assert problems(check_terms, study("Clear lungs.", "No acute disease.", icd10=["Q99.99"])) == [
        ("invalid_icd10", True)
    ]


def test_findings_section_is_found() -> None:
    assert findings_text(parse_record(GOOD)).startswith("Small right pleural effusion")
    bare = {"messages": [{"role": "user", "content": "Chest film."}, {"role": "assistant", "content": "Normal."}]}
    assert findings_text(parse_record(bare)) is None


def test_tier2_on_the_real_labeler() -> None:
    assert problems(check_impression, GOOD) == []
    negated = study("No pleural effusion. No pneumothorax.", "Large left pleural effusion.")
    assert problems(check_impression, negated) == [("impression_contradicts_findings", True)]
    unmentioned = study("Heart size normal. Lungs clear.", "Right pneumothorax.")
    assert problems(check_impression, unmentioned) == [("impression_unsupported", True)]
    missing = {"messages": [{"role": "user", "content": "Chest film."}, {"role": "assistant", "content": "Normal."}]}
    assert problems(check_impression, missing) == [("findings_missing", False)]
