"""Mask protected health information in radiology text before it is indexed, stored as a model input, logged or
written as a training record.

core.data.pii masks the generic kinds (emails, phones, labelled names and IDs); reports carry more: medical record
and accession numbers, exam and birth dates in many layouts, and clinicians' names after "Dr." or a signature
label. Those rules live here, on top of core.data.pii, as regular expressions (no maintained de-identification
library runs offline without downloading a model: Presidio and philter need spaCy/NER models at run time).
De-identification blanks already in the text (`___`) are left as they are.
"""

from __future__ import annotations

import re
from collections import Counter

from core.data.pii import mask_pii_report

_MONTHS = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|"
    r"Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
MRN = re.compile(
    r"(?P<label>\b(?:MRN|Medical record(?: number| no\.?)?|MR#|Patient ID|Hospital (?:number|no\.?))\s*[:#]?\s*)"
    r"(?P<value>[A-Z]{0,3}\d[\dA-Z-]{3,19})\b",
    re.IGNORECASE,
)
ACCESSION = re.compile(
    r"(?P<label>\b(?:Accession|Acc|Order)(?: number| no\.?| #)?\s*[:#]?\s*)(?P<value>[A-Z0-9-]{5,20})\b", re.IGNORECASE
)
DATE = re.compile(
    r"\b\d{4}[-/.]\d{1,2}[-/.]\d{1,2}\b"  # 2024-03-05
    r"|\b\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}\b"  # 03/05/2024, 5.3.24
    rf"|\b\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTHS}\.?,?\s+\d{{2,4}}\b"  # 5 March 2024
    rf"|\b{_MONTHS}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}\b",  # March 5, 2024
    re.IGNORECASE,
)
_NAME = r"[A-Z][a-zA-Z'’-]+"
CLINICIAN = re.compile(
    rf"(?P<label>\b(?:Dr\.?|Doctor|Prof\.?)\s+)(?P<name>(?:{_NAME}\.?\s+){{0,2}}{_NAME})"
    rf"|(?P<label2>\b(?:Signed by|Dictated by|Reported by|Read by|Attending|Referring(?: physician)?|Radiologist|"
    rf"Electronically signed by|Patient name|Patient|Name|Ordering(?: physician)?)\s*:?\s+)"
    rf"(?P<name2>{_NAME}(?:,?\s+{_NAME}\.?){{0,3}})"
)
# Words that follow a label but are not names ("Patient: Male", "Attending: None").
_NOT_NAMES = {"male", "female", "none", "unknown", "the", "no", "not", "a", "an", "is", "was", "has", "with", "for"}

KINDS = ("MRN", "ACCESSION", "DATE", "NAME", "PHONE", "EMAIL", "NATIONAL_ID", "CARD", "IBAN")


def mask_phi_report(text: str) -> tuple[str, Counter[str]]:
    """`text` with PHI replaced by `[KIND]` placeholders, and how many of each kind were replaced.

    Medical rules run first (record numbers before core's generic labelled IDs, dates before phones so a date is
    never half-masked as a phone number), then core.data.pii.mask_pii_report.
    """
    counts: Counter[str] = Counter()

    def labelled(kind: str):  # noqa: ANN202
        def sub(m: re.Match[str]) -> str:
            counts[kind] += 1
            return m.group("label") + f"[{kind}]"

        return sub

    def date(m: re.Match[str]) -> str:
        counts["DATE"] += 1
        return "[DATE]"

    def clinician(m: re.Match[str]) -> str:
        label = m.group("label") or m.group("label2")
        name = m.group("name") or m.group("name2")
        if name.split()[0].lower().strip(".,") in _NOT_NAMES:
            return m.group(0)
        counts["NAME"] += 1
        return label + "[NAME]"

    out = MRN.sub(labelled("MRN"), text)
    out = ACCESSION.sub(labelled("ACCESSION"), out)
    out = DATE.sub(date, out)
    out = CLINICIAN.sub(clinician, out)
    generic = mask_pii_report(out)
    counts.update(generic.counts)
    return generic.text, counts


def mask_phi(text: str) -> str:
    """`text` with PHI replaced by `[KIND]` placeholders (see `mask_phi_report`)."""
    return mask_phi_report(text)[0]


def phi_found(text: str) -> list[str]:
    """The PHI kinds still present in `text` (empty when masking would change nothing); used by tests and checks."""
    return sorted(mask_phi_report(text)[1])
