"""Split a free-text radiology report into its sections, as hospitals actually export them.

Headers (EXAMINATION, INDICATION, HISTORY, CLINICAL INFORMATION, TECHNIQUE, COMPARISON, FINDINGS, IMPRESSION,
CONCLUSION, OPINION, ...) come upper or mixed case, with or without a colon, alone on their line or inline
("FINDINGS: ... IMPRESSION: ..."); a `FINAL REPORT` preamble, de-identification blanks (`___`), wrapped lines,
Windows line endings and non-UTF-8 bytes all occur. Each header maps onto one canonical section; the parse
records which sections it found, which were inline, and problems (never an exception for a report's layout).

Hand-written because no maintained library here does it: medspaCy's Sectionizer would, but medspaCy pins spaCy
3.7 and numpy 1 and cannot be installed beside our numpy 2 (checked with pip).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# canonical section -> header spellings (matched case-insensitively)
HEADERS: dict[str, tuple[str, ...]] = {
    "examination": ("EXAMINATION", "EXAM", "PROCEDURE", "STUDY", "TYPE OF EXAMINATION"),
    "indication": (
        "INDICATION",
        "INDICATIONS",
        "HISTORY",
        "CLINICAL HISTORY",
        "CLINICAL INFORMATION",
        "CLINICAL INDICATION",
        "CLINICAL DETAILS",
        "REASON FOR EXAM",
        "REASON FOR EXAMINATION",
        "REASON FOR STUDY",
    ),
    "technique": ("TECHNIQUE", "PROTOCOL"),
    "comparison": ("COMPARISON", "COMPARISONS", "PRIOR", "PRIOR STUDIES"),
    "findings": ("FINDINGS", "FINDING", "REPORT"),
    "impression": ("IMPRESSION", "IMPRESSIONS", "CONCLUSION", "CONCLUSIONS", "OPINION", "SUMMARY", "DIAGNOSIS"),
}
SECTIONS = tuple(HEADERS)
_BY_SPELLING = {s: name for name, spellings in HEADERS.items() for s in spellings}
_ALT = "|".join(sorted((re.escape(s).replace(r"\ ", r"\s+") for s in _BY_SPELLING), key=len, reverse=True))
# A header at the start of a line: with a colon (any case, text may follow), or alone on its line (no colon).
LINE_HEADER = re.compile(rf"^[ \t]*(?P<h>{_ALT})[ \t]*(?::[ \t]*|[ \t]*$)", re.IGNORECASE | re.MULTILINE)
# A header inside a line: upper or title case with a colon, after a sentence end or a run of spaces
# ("... clear. IMPRESSION:").
INLINE_HEADER = re.compile(rf"(?:(?<=[.;])|(?<=\s\s))[ \t]*(?P<h>{_ALT})[ \t]*:[ \t]*", re.IGNORECASE)
PREAMBLE = re.compile(r"^\s*(?:FINAL REPORT|PRELIMINARY REPORT|ADDENDUM)\b[ \t]*:?", re.IGNORECASE)
BLANKS = re.compile(r"_{2,}")
_NUMBERED = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+")


@dataclass
class ParsedReport:
    """The sections of one report.

    Attributes:
        sections: canonical name -> cleaned text (wrapped lines joined; numbered items keep their own lines).
        found: canonical sections in the order their headers appear.
        inline: sections whose header stood inside a line.
        preamble: text before the first header (e.g. `FINAL REPORT`, a patient banner).
        problems: what is odd about the layout (no headers, a section repeated, an empty section).
    """

    sections: dict[str, str] = field(default_factory=dict)
    found: list[str] = field(default_factory=list)
    inline: list[str] = field(default_factory=list)
    preamble: str = ""
    problems: list[str] = field(default_factory=list)


def decode(raw: bytes) -> tuple[str, str | None]:
    """Bytes of a report file as text: UTF-8 (a BOM is dropped), else Windows-1252, else Latin-1.

    Returns:
        (text, note): note says which fallback was used, None for clean UTF-8.
    """
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252"), "not UTF-8: decoded as Windows-1252"
    except UnicodeDecodeError:
        return raw.decode("latin-1"), "not UTF-8: decoded as Latin-1"


def normalise(text: str) -> str:
    """Unify line endings, tabs and de-identification blanks (any run of underscores becomes `___`)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ").replace("\x00", "")
    return BLANKS.sub("___", text)


def clean_section(body: str) -> str:
    """Join wrapped lines with single spaces; numbered or bulleted items start their own line."""
    lines: list[str] = []
    for raw in body.split("\n"):
        line = " ".join(raw.split())
        if not line:
            continue
        if lines and not _NUMBERED.match(line):
            lines[-1] = f"{lines[-1]} {line}"
        else:
            lines.append(line)
    return "\n".join(lines).strip()


def _headers(text: str) -> list[tuple[int, int, str, bool]]:
    """(start, end, canonical section, inline) of each header, in text order."""
    hits = [(m.start(), m.end(), m.group("h"), False) for m in LINE_HEADER.finditer(text)]
    taken = [(s, e) for s, e, _, _ in hits]
    for m in INLINE_HEADER.finditer(text):
        spelling = m.group("h")
        if spelling not in (spelling.upper(), spelling.title()) or any(s <= m.start("h") < e for s, e in taken):
            continue
        hits.append((m.start(), m.end(), spelling, True))
    hits.sort()
    return [(s, e, _BY_SPELLING[" ".join(h.upper().split())], inline) for s, e, h, inline in hits]


def parse_sections(text: str) -> ParsedReport:
    """Split report text into canonical sections (see the module docstring); never raises for a layout."""
    text = normalise(text)
    out = ParsedReport()
    headers = _headers(text)
    head = text[: headers[0][0]] if headers else text
    out.preamble = clean_section(PREAMBLE.sub("", head))
    if not headers:
        out.problems.append("no section headers found")
        return out
    for i, (_, end, name, inline) in enumerate(headers):
        stop = headers[i + 1][0] if i + 1 < len(headers) else len(text)
        body = clean_section(text[end:stop])
        if name in out.sections:
            out.problems.append(f"section {name} appears more than once (joined)")
            if body:
                out.sections[name] = f"{out.sections[name]}\n{body}".strip()
            continue
        out.found.append(name)
        if inline:
            out.inline.append(name)
        out.sections[name] = body
    for name in out.found:
        if not out.sections[name]:
            out.problems.append(f"section {name} is empty")
    return out
