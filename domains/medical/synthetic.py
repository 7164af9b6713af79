"""A seeded generator of chest radiograph reports for tests, the demo, the default adapters and the benchmark.

Findings come with negations, hedges, devices and comparisons; the impression is consistent with the findings
(positives stated, hedged findings hedged, otherwise "no acute process"); each hospital has its own style: header
set, terse or narrative sentences, numbered, bulleted or prose impressions, inline or own-line headers. Four styles
are hospitals' (HOSPITALS: the backtest trains on one and tests on another); two more (PUBLIC_STYLES) stand for a
general, public corpus of chest reports, no hospital's own, that stage 1 learns from (domains.medical.training).
Written from general knowledge of how such reports read, not copied from any corpus. Every report carries its
intended labels (`truth`), so the labeler can be checked against them sentence by sentence.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from core.atomic import atomic_dir

# finding -> (present phrasings, impression phrase); "{side}" is filled with a side.
PRESENT: dict[str, tuple[tuple[str, ...], str]] = {
    "cardiomegaly": (
        ("The heart is enlarged.", "Moderate cardiomegaly.", "Cardiac silhouette is enlarged."),
        "cardiomegaly",
    ),
    "enlarged_cardiomediastinum": (("The mediastinum is widened.", "Widened mediastinum."), "widened mediastinum"),
    "edema": (
        (
            "There is mild pulmonary edema.",
            "Interstitial edema with vascular congestion.",
            "Pulmonary vascular congestion.",
        ),
        "pulmonary edema",
    ),
    "consolidation": (
        ("Consolidation in the {side} lower lobe.", "There is {side} basilar consolidation."),
        "{side} lower lobe consolidation",
    ),
    "pneumonia": (
        (
            "Patchy opacity in the {side} lung compatible with pneumonia.",
            "Findings consistent with {side} lower lobe pneumonia.",
        ),
        "{side} pneumonia",
    ),
    "atelectasis": (
        ("Bibasilar atelectasis.", "There is {side} basilar atelectasis.", "Linear atelectasis at the {side} base."),
        "{side} basilar atelectasis",
    ),
    "pneumothorax": (
        ("There is a small {side} apical pneumothorax.", "Small {side} pneumothorax."),
        "small {side} pneumothorax",
    ),
    "pleural_effusion": (
        (
            "Small {side} pleural effusion.",
            "There is a moderate {side} pleural effusion.",
            "Blunting of the {side} costophrenic angle.",
        ),
        "{side} pleural effusion",
    ),
    "pleural_other": (("{Side} pleural thickening.", "Calcified pleural plaques."), "pleural thickening"),
    "fracture": (("Healing {side} rib fracture.", "Acute fracture of the {side} clavicle."), "{side} rib fracture"),
    "emphysema": (
        ("The lungs are hyperinflated with emphysema.", "Emphysematous changes in the upper lobes."),
        "emphysema",
    ),
    "nodule": (
        ("A 6 mm nodule in the {side} upper lobe.", "Small nodular opacity at the {side} apex."),
        "{side} pulmonary nodule",
    ),
    "lung_lesion": (
        ("A 3 cm mass in the {side} upper lobe.", "Spiculated lung mass in the {side} hilum."),
        "{side} lung mass",
    ),
    "hernia": (("Small hiatal hernia.", "A hiatal hernia is present."), "hiatal hernia"),
    "lung_opacity": (("Hazy opacity at the {side} base.", "Patchy opacities in both lungs."), "{side} basilar opacity"),
}
NEGATED: dict[str, tuple[str, ...]] = {
    "pneumothorax": ("No pneumothorax.", "There is no pneumothorax."),
    "pleural_effusion": ("No pleural effusion.", "No effusion.", "No large pleural effusion."),
    "consolidation": ("No focal consolidation.", "The lungs are clear without consolidation."),
    "edema": ("No pulmonary edema.", "No evidence of edema."),
    "cardiomegaly": ("No cardiomegaly.",),
    "fracture": ("No acute fracture.", "No displaced rib fracture."),
    "pneumonia": ("No evidence of pneumonia.",),
    "nodule": ("No suspicious nodule.",),
}
HEDGED: dict[str, tuple[tuple[str, ...], str]] = {
    "atelectasis": (("Opacity at the {side} base may represent atelectasis.",), "possible {side} basilar atelectasis"),
    "pneumonia": (
        ("Hazy {side} basilar opacity; pneumonia cannot be excluded.", "Opacity could represent early pneumonia."),
        "pneumonia cannot be excluded",
    ),
    "pleural_effusion": (("Possible small {side} pleural effusion.",), "possible small {side} effusion"),
    "edema": (("Possible mild interstitial edema.",), "possible mild edema"),
    "nodule": (("Questionable nodule in the {side} mid lung.",), "questionable {side} nodule"),
}
RESOLVED: dict[str, str] = {
    "edema": "Previously seen edema has resolved.",
    "pneumothorax": "The previously seen {side} pneumothorax has resolved.",
    "pleural_effusion": "Interval resolution of the {side} pleural effusion.",
}
DEVICES: dict[str, tuple[str, str]] = {
    "endotracheal_tube": (
        "Endotracheal tube terminates 4 cm above the carina.",
        "endotracheal tube in standard position",
    ),
    "enteric_tube": ("Enteric tube courses below the diaphragm into the stomach.", "enteric tube in the stomach"),
    "central_venous_catheter": (
        "{Side} internal jugular central venous catheter tip at the cavoatrial junction.",
        "central venous catheter in good position",
    ),
    "chest_tube": ("{Side} chest tube in place.", "{side} chest tube in place"),
}
INDICATIONS = (
    "Shortness of breath.", "Cough and fever.", "Chest pain.", "___-year-old with hypoxia.", "Evaluate for pneumonia.",
    "Post line placement.", "Follow-up effusion.", "Trauma, rib pain.", "Pre-operative assessment.",
    "Dyspnea, history of heart failure.",
)  # fmt: skip
OPACITY = re.compile(r"\bopacit", re.IGNORECASE)
COMPARISONS = ("___", "Chest radiograph from ___.", "None.", "Prior study of ___.")


@dataclass(frozen=True)
class Style:
    """How one hospital writes: header words, terse or narrative, numbered or bulleted impressions, inline headers."""

    name: str
    headers: dict[str, str]
    preamble: str = ""
    numbered: bool = False
    bullets: bool = False
    inline: bool = False
    colon: bool = True
    upper: bool = True
    normal_impression: str = "No acute cardiopulmonary process."


STYLES: dict[str, Style] = {
    "st_marys": Style(
        "st_marys",
        {"examination": "EXAMINATION", "indication": "INDICATION", "technique": "TECHNIQUE", "comparison": "COMPARISON",
         "findings": "FINDINGS", "impression": "IMPRESSION"},
        preamble="FINAL REPORT",
    ),
    "northgate": Style(
        "northgate",
        {"indication": "CLINICAL INFORMATION", "findings": "REPORT", "impression": "CONCLUSION"},
        numbered=True, normal_impression="No acute abnormality.",
    ),
    "riverside": Style(
        "riverside",
        {"indication": "History", "comparison": "Comparison", "findings": "Findings", "impression": "Opinion"},
        inline=True, upper=False, normal_impression="Normal chest radiograph.",
    ),
    "lakeside": Style(
        "lakeside",
        {"examination": "Exam", "indication": "Reason for exam", "findings": "Findings", "impression": "Summary"},
        colon=False, upper=False, numbered=True, normal_impression="No acute cardiopulmonary abnormality.",
    ),
    # a public archive's layout: upper-case headers, clinical history, bulleted impressions
    "public_archive": Style(
        "public_archive",
        {"examination": "EXAMINATION", "indication": "CLINICAL HISTORY", "comparison": "COMPARISON",
         "findings": "FINDINGS", "impression": "IMPRESSION"},
        bullets=True, normal_impression="No acute intrathoracic process.",
    ),
    # a teaching file's layout: mixed-case headers, prose conclusions
    "public_teaching": Style(
        "public_teaching",
        {"indication": "Clinical details", "technique": "Technique", "findings": "Findings",
         "impression": "Conclusions"},
        upper=False, normal_impression="No acute cardiopulmonary disease.",
    ),
}  # fmt: skip
PUBLIC_STYLES = ("public_archive", "public_teaching")
HOSPITALS = tuple(s for s in STYLES if s not in PUBLIC_STYLES)


@dataclass
class SyntheticReport:
    """One generated report: id, hospital, full text, and the labels it was written to state."""

    report_id: str
    hospital: str
    text: str
    truth: dict[str, str] = field(default_factory=dict)
    sentences: list[tuple[str, dict[str, str]]] = field(default_factory=list)


def _fill(template: str, side: str) -> str:
    return template.replace("{side}", side).replace("{Side}", side.capitalize())


def _findings(rng: random.Random) -> tuple[list[tuple[str, dict[str, str]]], list[str], dict[str, str]]:
    """(finding sentences with their labels, impression phrases, truth)."""
    sentences: list[tuple[str, dict[str, str]]] = []
    impression: list[str] = []
    truth: dict[str, str] = {}
    n_pos = rng.choices([0, 1, 2, 3], weights=[3, 4, 3, 1])[0]
    for name in rng.sample(sorted(PRESENT), n_pos):
        side = rng.choice(("right", "left"))
        options, phrase = PRESENT[name]
        sentences.append((_fill(rng.choice(options), side), {name: "present"}))
        impression.append(_fill(phrase, side))
        truth[name] = "present"
    hedgeable = sorted(set(HEDGED) - set(truth))
    if hedgeable and rng.random() < 0.35:
        name = rng.choice(hedgeable)
        side = rng.choice(("right", "left"))
        options, phrase = HEDGED[name]
        sentences.append((_fill(rng.choice(options), side), {name: "uncertain"}))
        impression.append(_fill(phrase, side))
        truth[name] = "uncertain"
    resolvable = sorted(set(RESOLVED) - set(truth))
    if resolvable and rng.random() < 0.2:
        name = rng.choice(resolvable)
        sentences.append((_fill(RESOLVED[name], rng.choice(("right", "left"))), {name: "absent"}))
        truth[name] = "absent"
    negatable = sorted(set(NEGATED) - set(truth))
    for name in rng.sample(negatable, min(len(negatable), rng.randint(1, 3))):
        sentences.append((rng.choice(NEGATED[name]), {name: "absent"}))
        truth[name] = "absent"
    if rng.random() < 0.3:
        for name in rng.sample(sorted(DEVICES), rng.randint(1, 2)):
            side = rng.choice(("right", "left"))
            sentences.insert(0, (_fill(DEVICES[name][0], side), {name: "present", "support_devices": "present"}))
            impression.append(_fill(DEVICES[name][1], side))
            truth[name] = truth["support_devices"] = "present"
    for sentence, labels in sentences:  # an opacity described is a lung opacity, whatever it may represent
        if OPACITY.search(sentence) and "nodular opacity" not in sentence.lower() and "lung_opacity" not in labels:
            labels["lung_opacity"] = truth["lung_opacity"] = "present"
    if not any(s in ("present", "uncertain") for f, s in truth.items() if f not in DEVICES and f != "support_devices"):
        truth["no_finding"] = "present"
    return sentences, impression, truth


def _header(style: Style, section: str) -> str:
    word = style.headers[section]
    return word.upper() if style.upper else word


def make_report(rng: random.Random, style: Style, report_id: str, *, phi: bool = False) -> SyntheticReport:
    """One report in `style`; with `phi`, a patient banner with a name, MRN, date and phone (to test masking)."""
    sentences, impression, truth = _findings(rng)
    if "cardiomegaly" not in truth and rng.random() < 0.6:
        sentences.insert(0, ("Heart size is normal.", {}))
    body = " ".join(s for s, _ in sentences)
    if impression:
        items = [p[0].upper() + p[1:] for p in impression]
        if style.numbered:
            imp = "\n".join(f"{i}. {p}." for i, p in enumerate(items, 1))
        elif style.bullets:
            imp = "\n".join(f"- {p}." for p in items)
        else:
            imp = ". ".join(items) + "."
    else:
        imp = ("1. " if style.numbered else "") + style.normal_impression
    values = {
        "examination": "CHEST PA AND LATERAL" if rng.random() < 0.7 else "CHEST PORTABLE AP",
        "indication": rng.choice(INDICATIONS),
        "technique": "PA and lateral views of the chest.",
        "comparison": rng.choice(COMPARISONS),
        "findings": body,
        "impression": imp,
    }
    own_line = {"impression"} if style.bullets and impression else set()  # a bulleted list starts below its header
    parts = [f"{_header(style, s)}: {values[s]}" if style.colon and s not in own_line
             else f"{_header(style, s)}{':' if style.colon else ''}\n{values[s]}" for s in style.headers]  # fmt: skip
    text = (
        ("  " if style.inline else "\n\n").join(parts) if not style.inline else "  ".join(parts[:-1]) + "\n" + parts[-1]
    )
    if style.preamble:
        text = f"{style.preamble}\n{text}"
    if phi:
        day, month = rng.randint(1, 28), rng.randint(1, 12)
        banner = (
            f"Patient: {rng.choice(('Mary Jones', 'John Smith', 'Ana Lopez'))}  MRN: {rng.randint(1000000, 9999999)}\n"
            f"Exam date: 2024-{month:02d}-{day:02d}  Ordering physician: Dr. Alan Reed  "
            f"Phone: (555) 123-{rng.randint(1000, 9999)}\n"
        )
        text = banner + text
    return SyntheticReport(report_id, style.name, text + "\n", truth, sentences)


def generate(n: int, *, hospital: str = "st_marys", seed: int = 0, phi: bool = False) -> list[SyntheticReport]:
    """`n` reports of one style (a hospital's or a public corpus's), seeded.

    Raises:
        KeyError: unknown style (the message lists the styles).
    """
    if hospital not in STYLES:
        raise KeyError(f"unknown report style {hospital!r}: one of {', '.join(STYLES)}")
    rng = random.Random(f"{hospital}:{seed}")
    return [make_report(rng, STYLES[hospital], f"{hospital}-{i:05d}", phi=phi) for i in range(n)]


def write_folder(reports: list[SyntheticReport], out: Path, *, crlf: bool = False) -> Path:
    """Write one `<report_id>.txt` per report into `out` (atomically: the folder appears complete or not at all)."""
    with atomic_dir(Path(out)) as tmp:
        for r in reports:
            data = r.text.replace("\n", "\r\n") if crlf else r.text
            (tmp / f"{r.report_id}.txt").write_bytes(data.encode("utf-8"))
    return Path(out)
