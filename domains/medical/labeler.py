"""The finding labeler: which chest findings a report states as present, uncertain or absent.

One labeler serves the backtest's finding F1 and agreement, the data filter's consistency tier and the radiologist
page's highlights. It is negspacy (NegEx, its `en_clinical` rules shipped in the package) on a blank spaCy English
pipeline: an EntityRuler matches the finding terms of domains.medical.vocabulary, one Negex component marks negated
mentions ("no pneumothorax", "edema has resolved") and a second Negex component, given an uncertainty termset,
marks hedged ones ("may represent atelectasis", "pneumonia cannot be excluded"). medspaCy's ConText would do both
in one component, but medspaCy pins spaCy 3.7 / numpy 1 and cannot be installed beside our numpy 2; negspacy runs
on spaCy 3.8. spaCy's trained models cannot be downloaded here, so sentences are split by a rule (`.`, `;`, `!`,
`?` and line breaks end a scope) before the pipeline runs, and NegEx terminations ("but", "however", an
uncertainty cue) end a scope inside a sentence.

bench/medical.py measures it against hand-written, hand-labelled sentences (bench/assets/labeler_gold.jsonl).

Per finding the strongest mention wins: present > uncertain > absent (the CheXpert labeler's aggregation);
findings never mentioned are left out. `no_finding` is dropped when any other finding but a device is present or
uncertain.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from domains.medical.vocabulary import FINDINGS, finding_terms

__all__ = ["FINDINGS", "Mention", "label_report", "mentions"]

PRESENT, UNCERTAIN, ABSENT = "present", "uncertain", "absent"
RANK = {ABSENT: 0, UNCERTAIN: 1, PRESENT: 2}
IGNORED = "_other"  # phrases that look like a finding but are not one (pericardial effusion, no change)
# air in the soft tissues (subcutaneous emphysema) is not pulmonary emphysema
NOT_FINDINGS = ("pericardial effusion", "joint effusion", "soft tissue mass", "soft tissue masses", "abdominal mass",
                "subcutaneous emphysema", "surgical emphysema")  # fmt: skip
DEVICE_LIKE = ("support_devices", "endotracheal_tube", "enteric_tube", "central_venous_catheter", "chest_tube")

UNCERTAIN_BEFORE = [
    "may represent", "may reflect", "may be", "may", "might", "could represent", "could reflect", "could be",
    "possible", "possibly", "probable", "probably", "likely", "suspicious for", "suggestive of", "suggesting",
    "concerning for", "concern for", "questionable", "question of", "equivocal", "suspected", "presumed",
    "borderline", "differential includes", "differential diagnosis includes", "versus", "vs", "vs.",
    "cannot exclude", "can not exclude", "cannot rule out", "can not rule out", "evaluate for", "eval for",
    "assess for", "rule out", "r/o", "either", "suggests", "suggest", "favored to represent", "favored to be",
    "favoring", "raise concern for", "raises concern for",
]  # fmt: skip
# Hedges that do not end a negation's scope: "no consolidation to suggest pneumonia" negates both.
HEDGES_IN_NEGATION = ("suggests", "suggest")
UNCERTAIN_AFTER = [
    "is not excluded", "not excluded", "cannot be excluded", "can not be excluded", "cannot be ruled out",
    "not ruled out", "is possible", "is suspected", "is questioned", "versus", "vs", "vs.", "is likely",
    "is probable", "is questionable", "not entirely excluded", "are likely", "are possible", "are suspected",
    "are probable", "is a consideration",
]  # fmt: skip
NEGATION_BEFORE_EXTRA = [
    "resolved",
    "resolution of",
    "interval resolution of",
    "no longer",
    "removal of",
    "interval removal of",
    "clear of",
    "clearing of",
    "no evidence of",
    "no radiographic evidence of",
    "absent",
]
NEGATION_AFTER_EXTRA = [
    "has resolved",
    "have resolved",
    "resolved",
    "has cleared",
    "have cleared",
    "cleared",
    "no longer seen",
    "no longer visualized",
    "is no longer seen",
    "has been removed",
    "have been removed",
    "removed",
    "is absent",
    "are absent",
    "not seen",
    "is not seen",
    "are not seen",
    "not identified",
    "is not identified",
    "not present",
    "no longer present",
    "no longer visible",
    "no longer evident",
    "no longer identified",
    "removal",
]
# Moved out of negspacy's clinical negations: in radiology they hedge ("atelectasis versus pneumonia").
NEGATION_MOVED = ("versus", "evaluate for", "rule out", "rules out", "r/o", "ro")
NEGATION_PSEUDO_EXTRA = [
    "cannot exclude",
    "can not exclude",
    "cannot be excluded",
    "can not be excluded",
    "not excluded",
    "cannot rule out",
    "can not rule out",
    "cannot be ruled out",
    "not entirely excluded",
    "no interval change",
    "not significantly changed",
    # partly resolved is still there
    "nearly resolved",
    "almost resolved",
    "largely resolved",
    "partially resolved",
    "partial resolution",
    "incompletely resolved",
    "not resolved",
    "not fully resolved",
    "not completely resolved",
]
# "after", "following", "since" start a clause of its own: "pneumothorax after chest tube removal"
TERMINATION_EXTRA = ["there is", "there are", "there has been", "otherwise", "with new", "while", "whereas", "after",
                     "following", "since"]  # fmt: skip
_SENTENCE = re.compile(r"[^.;!?\n]+(?:[.;!?]+|$)", re.MULTILINE)


@dataclass(frozen=True)
class Mention:
    """One finding mention: character span in the labelled text, finding name, status and the matched words."""

    start: int
    end: int
    finding: str
    status: str
    text: str


def _termsets() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    from negspacy.termsets import termset

    base = termset("en_clinical").get_patterns()
    hedges = [t for t in UNCERTAIN_BEFORE if "not" not in t and "exclude" not in t and "rule" not in t
              and t not in HEDGES_IN_NEGATION]  # fmt: skip
    negation = {
        "pseudo_negations": base["pseudo_negations"] + NEGATION_PSEUDO_EXTRA,
        "preceding_negations": [t for t in base["preceding_negations"] if t not in NEGATION_MOVED]
        + NEGATION_BEFORE_EXTRA,
        "following_negations": base["following_negations"] + NEGATION_AFTER_EXTRA,
        "termination": base["termination"] + TERMINATION_EXTRA + hedges,
    }
    uncertainty = {
        "pseudo_negations": ["no change", "no interval change", "likely unchanged", "possibly related to"],
        "preceding_negations": UNCERTAIN_BEFORE,
        "following_negations": UNCERTAIN_AFTER,
        "termination": base["termination"] + TERMINATION_EXTRA,
    }
    return negation, uncertainty


@lru_cache(maxsize=1)
def pipeline() -> Any:
    """The spaCy pipeline (blank English, sentencizer, EntityRuler, negation Negex, uncertainty Negex), built once."""
    import spacy
    from negspacy.negation import Negex  # noqa: F401  (registers the "negex" factory)

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer", config={"punct_chars": [".", ";", "!", "?"]})  # negspacy reads doc.sents
    ruler = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "LOWER"})
    patterns = [{"label": name, "pattern": term} for name, terms in finding_terms().items() for term in terms]
    patterns += [{"label": IGNORED, "pattern": term} for term in NOT_FINDINGS]
    ruler.add_patterns(patterns)  # type: ignore[attr-defined]
    negation, uncertainty = _termsets()
    nlp.add_pipe("negex", name="negation", config={"neg_termset": negation, "extension_name": "negex"})
    nlp.add_pipe("negex", name="uncertainty", config={"neg_termset": uncertainty, "extension_name": "uncertain"})
    return nlp


def _sentences(text: str) -> Iterator[tuple[int, str]]:
    for m in _SENTENCE.finditer(text):
        if m.group(0).strip():
            yield m.start(), m.group(0)


def mentions(text: str) -> list[Mention]:
    """Every finding mention in `text` with its status, in text order (for highlighting)."""
    nlp = pipeline()
    spans = list(_sentences(text))
    out: list[Mention] = []
    for (offset, _), doc in zip(spans, nlp.pipe(s for _, s in spans), strict=True):
        for ent in doc.ents:
            if ent.label_ == IGNORED:
                continue
            status = ABSENT if ent._.negex else UNCERTAIN if ent._.uncertain else PRESENT
            out.append(Mention(offset + ent.start_char, offset + ent.end_char, ent.label_, status, ent.text))
    return out


def label_report(text: str) -> dict[str, str]:
    """finding -> "present" | "uncertain" | "absent" over the whole text; findings not mentioned are left out."""
    labels: dict[str, str] = {}
    for m in mentions(text or ""):
        if m.finding not in labels or RANK[m.status] > RANK[labels[m.finding]]:
            labels[m.finding] = m.status
    for device in ("endotracheal_tube", "enteric_tube", "central_venous_catheter", "chest_tube"):
        if labels.get(device) == PRESENT:
            labels["support_devices"] = PRESENT
    if any(labels.get(f) in (PRESENT, UNCERTAIN) for f in FINDINGS if f not in DEVICE_LIKE and f != "no_finding"):
        labels.pop("no_finding", None)
    return {f: labels[f] for f in FINDINGS if f in labels}


def positives(labels: dict[str, str]) -> set[str]:
    """Findings labelled present (the seed's overlap counts these)."""
    return {f for f, s in labels.items() if s == PRESENT}
