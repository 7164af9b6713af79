"""Agreement metrics against hand-computed values."""

from __future__ import annotations

import pytest

from domains.medical.agreement import agreement, bleu4, finding_f1, report_agreement, rouge_l


def test_finding_f1_and_agreement_by_hand() -> None:
    pred = [{"edema": "present", "pneumonia": "uncertain"}, {"no_finding": "present"}]
    ref = [{"edema": "present", "atelectasis": "present"}, {"no_finding": "present", "fracture": "absent"}]
    micro, macro = finding_f1(pred, ref)
    # tp: edema, no_finding (2); fp: pneumonia (1); fn: atelectasis (1) -> 2*2 / (4 + 1 + 1)
    assert micro == pytest.approx(4 / 6)
    assert macro == pytest.approx((1 + 0 + 0 + 1) / 4)  # edema 1, pneumonia 0, atelectasis 0, no_finding 1
    assert agreement(pred, ref) == pytest.approx(2 / 3)  # edema, no_finding of edema, atelectasis, no_finding
    assert report_agreement({}, {"edema": "absent"}) is None


def test_text_overlap() -> None:
    assert rouge_l("small left effusion", "small left effusion") == pytest.approx(1.0)
    assert rouge_l("", "x") == 0.0
    assert bleu4(["no acute cardiopulmonary process ."], ["no acute cardiopulmonary process ."]) == pytest.approx(1.0)
