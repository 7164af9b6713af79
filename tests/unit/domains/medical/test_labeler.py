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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Mends found with the hand-labelled sentences of bench/assets/labeler_gold.jsonl (its dev split); each
        # with a case that must fire and one that must not.
        # air in the soft tissues is not pulmonary emphysema
        ("Subcutaneous emphysema along the chest wall.", {}),
        ("Emphysema in the upper lobes.", {"emphysema": "present"}),
        ("Soft tissue masses in the left axilla.", {}),
        ("Masses in both lungs.", {"lung_lesion": "present"}),
        # "no longer present / visible" negates what comes before it
        ("Pleural effusions are no longer present.", {"pleural_effusion": "absent"}),
        ("The nodule is still present.", {"nodule": "present"}),
        # partly resolved is still there
        ("The effusion has nearly resolved.", {"pleural_effusion": "present"}),
        ("Atelectasis has partially resolved.", {"atelectasis": "present"}),
        ("The effusion has resolved.", {"pleural_effusion": "absent"}),
        # "suggests" hedges, but stays inside a negation's scope
        ("The appearance suggests pneumonia.", {"pneumonia": "uncertain"}),
        ("No focal consolidation to suggest pneumonia.", {"consolidation": "absent", "pneumonia": "absent"}),
        # "favored to represent", "are likely", "is a consideration" hedge
        ("The consolidation is favored to represent pneumonia.",
         {"consolidation": "present", "pneumonia": "uncertain"}),
        ("The consolidation represents pneumonia.", {"consolidation": "present", "pneumonia": "present"}),
        ("Small effusions are likely present.", {"pleural_effusion": "uncertain"}),
        ("Small effusions are present.", {"pleural_effusion": "present"}),
        ("Pneumonia is a consideration.", {"pneumonia": "uncertain"}),
        # "absent" before a list negates it; after a finding, "absent on the prior" does not
        ("Absent pneumothorax, effusion and consolidation.",
         {"pneumothorax": "absent", "pleural_effusion": "absent", "consolidation": "absent"}),
        ("Pleural effusion, absent on the prior study, is new.", {"pleural_effusion": "present"}),
        # a removed device is absent; "after" / "since" end the scope so what precedes keeps its own status
        ("Small pneumothorax after chest tube removal.", {"pneumothorax": "present", "chest_tube": "absent"}),
        ("Pneumothorax, unchanged since removal of the chest tube.",
         {"pneumothorax": "present", "chest_tube": "absent"}),
        ("No pneumothorax after chest tube removal.", {"pneumothorax": "absent", "chest_tube": "absent"}),
        ("No pneumothorax following right IJ central line placement.",
         {"pneumothorax": "absent", "central_venous_catheter": "present", "support_devices": "present"}),
        # vocabulary: a tracheostomy tube is a support device, not an endotracheal tube
        ("Tracheostomy tube in place.", {"support_devices": "present"}),
        ("Endotracheal tube in place.", {"endotracheal_tube": "present", "support_devices": "present"}),
        ("Right IJ line in the SVC.", {"central_venous_catheter": "present", "support_devices": "present"}),
        ("Right IJ approach.", {}),
        ("Fluid in the pleural space.", {"pleural_effusion": "present"}),
        ("Air in the pleural space.", {"pneumothorax": "present"}),
        ("The pleural space is partly imaged.", {}),
        ("No acute intrathoracic abnormality.", {"no_finding": "present"}),
        ("Acute intrathoracic abnormality.", {}),
    ],
)  # fmt: skip
def test_mends_from_the_hand_labelled_set(text: str, expected: dict[str, str]) -> None:
    assert label_report(text) == expected


def test_mentions_point_at_the_words() -> None:
    text = "FINDINGS: No effusion.\nIMPRESSION: Cardiomegaly."
    found = [(text[m.start : m.end], m.finding, m.status) for m in mentions(text)]
    assert found == [("effusion", "pleural_effusion", "absent"), ("Cardiomegaly", "cardiomegaly", "present")]
