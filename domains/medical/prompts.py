"""The drafting prompt: a study (indication, comparison, findings) and similar prior reports -> the impression.

The same messages train stage 2 and are sent at drafting time, so what the adapter learned is what it is asked.
Every study field and prior report is PHI-masked (domains.medical.phi) before it enters a prompt: the prompt is
stored as the model input exactly as sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from domains.medical.ingest import Report
from domains.medical.phi import mask_phi

SYSTEM = (
    "You are a radiologist. Write the IMPRESSION of this chest radiograph report from its findings: short, "
    "state positive findings first, hedge what the findings hedge, and say 'No acute cardiopulmonary process.' "
    "when nothing is abnormal."
)


@dataclass(frozen=True)
class Prior:
    """A similar past report of the same hospital: its findings and the impression signed for them."""

    report_id: str
    findings: str
    impression: str


def study_text(report: Report) -> str:
    """The study part of a report as the prompt shows it (PHI-masked)."""
    lines = []
    if report.indication:
        lines.append(f"INDICATION: {mask_phi(report.indication)}")
    if report.comparison:
        lines.append(f"COMPARISON: {mask_phi(report.comparison)}")
    lines.append(f"FINDINGS: {mask_phi(report.findings)}")
    return "\n".join(lines)


def build_messages(report: Report, priors: list[Prior] | None = None) -> list[dict[str, str]]:
    """[system, user] messages asking for the impression of `report`'s study (priors as context, masked)."""
    user = study_text(report)
    if priors:
        shown = "\n\n".join(
            f"Prior report {i}:\nFINDINGS: {mask_phi(p.findings)}\nIMPRESSION: {mask_phi(p.impression)}"
            for i, p in enumerate(priors, 1)
        )
        user = f"Similar prior reports from this hospital:\n\n{shown}\n\nCurrent study:\n{user}"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user + "\n\nIMPRESSION:"}]


def clean_draft(text: str) -> str:
    """The generated impression, trimmed (a repeated `IMPRESSION:` header and trailing blank lines removed)."""
    text = text.strip()
    if text.upper().startswith("IMPRESSION:"):
        text = text[len("IMPRESSION:") :].strip()
    return text.split("\n\n")[0].strip()
