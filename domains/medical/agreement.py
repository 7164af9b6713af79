"""How far a draft impression agrees with the reference (the signed or the original impression).

Text overlap with the libraries papers report: ROUGE-L F1 (rouge-score) and corpus BLEU-4 (sacrebleu, scaled to
0-1). Finding agreement with the labeler: a finding counts as positive when labelled present or uncertain; finding
F1 compares the draft's positives with the reference's, micro over all (report, finding) pairs and macro over
findings that are positive in either; `agreement` is the seed's overlap measure, the share of the reference's
present findings (no_finding included, so normal studies count) that the draft states present too.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from domains.medical.labeler import FINDINGS

POSITIVE = ("present", "uncertain")


@lru_cache(maxsize=1)
def _rouge() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 of one prediction against one reference, 0-1."""
    if not prediction.strip() or not reference.strip():
        return 0.0
    return float(_rouge().score(reference, prediction)["rougeL"].fmeasure)


def bleu4(predictions: list[str], references: list[str]) -> float:
    """Corpus BLEU-4 (sacrebleu defaults: 13a tokenisation, exponential smoothing off), scaled to 0-1."""
    import sacrebleu

    if not predictions:
        return 0.0
    return float(sacrebleu.corpus_bleu(predictions, [references]).score) / 100.0


def finding_f1(predicted: list[dict[str, str]], reference: list[dict[str, str]]) -> tuple[float, float]:
    """(micro F1, macro F1) of positive findings, labels per report aligned in the two lists."""
    tp = {f: 0 for f in FINDINGS}
    fp = dict(tp)
    fn = dict(tp)
    for pred, ref in zip(predicted, reference, strict=True):
        for f in FINDINGS:
            p, r = pred.get(f) in POSITIVE, ref.get(f) in POSITIVE
            tp[f] += p and r
            fp[f] += p and not r
            fn[f] += r and not p
    t, p_, n = sum(tp.values()), sum(fp.values()), sum(fn.values())
    micro = 2 * t / (2 * t + p_ + n) if t + p_ + n else 0.0
    per = [2 * tp[f] / (2 * tp[f] + fp[f] + fn[f]) for f in FINDINGS if tp[f] + fp[f] + fn[f]]
    return micro, (sum(per) / len(per) if per else 0.0)


def agreement(predicted: list[dict[str, str]], reference: list[dict[str, str]]) -> float:
    """Share of the references' present findings that the drafts state present (pooled over reports)."""
    hit = total = 0
    for pred, ref in zip(predicted, reference, strict=True):
        wanted = {f for f, s in ref.items() if s == "present"}
        total += len(wanted)
        hit += sum(pred.get(f) == "present" for f in wanted)
    return hit / total if total else 0.0


def report_agreement(draft_labels: dict[str, str], signed_labels: dict[str, str]) -> float | None:
    """`agreement` for one report; None when the signed text states no present finding."""
    if not any(s == "present" for s in signed_labels.values()):
        return None
    return agreement([draft_labels], [signed_labels])
