"""The finding labeler: each behaviour with a case that must fire and one that must not."""

from __future__ import annotations

import pytest

from domains.medical.labeler import FINDINGS, label_report, mentions

REQUIRED = {
    "no_finding", "enlarged_cardiomediastinum", "cardiomegaly", "lung_opacity", "lung_lesion", "edema",
    "consolidation", "pneumonia", "atelectasis", "pneumothorax", "pleural_effusion", "pleural_other", "fracture",
    "support_devices", "emphysema", "nodule", "hernia", "endotracheal_tube", "enteric_tube",
    "central_venous_catheter", "chest_tube",
}  # fmt: skip


def test_finding_names() -> None:
    assert REQUIRED <= set(FINDINGS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # negation: fires / does not fire
        ("No pneumothorax.", {"pneumothorax": "absent"}),
        ("Small right pneumothorax.", {"pneumothorax": "present"}),
        ("Edema has resolved.", {"edema": "absent"}),
        ("Resolved edema.", {"edema": "absent"}),
        ("Worsening edema.", {"edema": "present"}),
        # uncertainty: fires / does not fire
        ("Opacity may represent atelectasis.", {"lung_opacity": "present", "atelectasis": "uncertain"}),
        ("Pneumonia cannot be excluded.", {"pneumonia": "uncertain"}),
        ("Findings consistent with pneumonia.", {"pneumonia": "present"}),
        # scope boundaries: a negation ends at "but", at a sentence end, and covers a list
        ("No effusion but there is consolidation.", {"pleural_effusion": "absent", "consolidation": "present"}),
        ("No pneumothorax. Small left pleural effusion.", {"pneumothorax": "absent", "pleural_effusion": "present"}),
        ("No pneumothorax, effusion, or consolidation.",
         {"pneumothorax": "absent", "pleural_effusion": "absent", "consolidation": "absent"}),
        ("No evidence of pneumonia, possibly atelectasis.", {"pneumonia": "absent", "atelectasis": "uncertain"}),
        # synonyms (core and radiology-semantic-dict): fire / look-alikes do not
        ("ET tube 4 cm above the carina. NG tube in the stomach.",
         {"endotracheal_tube": "present", "enteric_tube": "present", "support_devices": "present"}),
        ("Subsegmental atelectasis at the left base.", {"atelectasis": "present"}),
        ("Small pericardial effusion.", {}),
        # not mentioned: left out
        ("Heart size is normal.", {}),
        ("No acute cardiopulmonary process.", {"no_finding": "present"}),
        ("Cardiomegaly. No acute cardiopulmonary process.", {"cardiomegaly": "present"}),
    ],
)  # fmt: skip
def test_labels(text: str, expected: dict[str, str]) -> None:
    assert label_report(text) == expected


def test_mentions_point_at_the_words() -> None:
    text = "FINDINGS: No effusion.\nIMPRESSION: Cardiomegaly."
    found = [(text[m.start : m.end], m.finding, m.status) for m in mentions(text)]
    assert found == [("effusion", "pleural_effusion", "absent"), ("Cardiomegaly", "cardiomegaly", "present")]
