"""Reads radiology reports (a folder of text files, JSONL or CSV) into parsed reports, and says which can be used.

A folder holds one report per file (any extension; the id is the file name without its extension; files are read
in name order, which is the report order a backtest keeps). JSONL and CSV rows carry either the whole `text` or
ready sections (`indication`, `findings`, `comparison`, `impression`); a column mapping (`field=column`, as in
finance) renames keys onto these canonical fields. A study is indication/history + findings (+ comparison); the
target is the impression. Reports that cannot be used are kept with the reason (never dropped silently): no
findings (nothing to draft from), no impression (no training pair or reference).
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import NotFoundError, ValidationError
from domains.medical.sections import ParsedReport, clean_section, decode, parse_sections

CANONICAL = ("report_id", "hospital", "text", "indication", "findings", "comparison", "impression", "examination")
SECTION_FIELDS = ("examination", "indication", "comparison", "findings", "impression")
NO_FINDINGS = "no findings section"
NO_IMPRESSION = "no impression section"


@dataclass
class Report:
    """One parsed report.

    Attributes:
        report_id: file name stem, or the row's id (else `row<N>`).
        hospital: the hospital it came from ("" when not given).
        sections: canonical section -> text.
        found: sections found, in order; inline: those whose header was inside a line.
        problems: layout and decoding notes; unusable: reasons the report cannot be drafted or trained on.
        source: file path or `file:row`; raw: the decoded text as read ("" for rows given as sections).
    """

    report_id: str
    hospital: str
    sections: dict[str, str]
    found: list[str] = field(default_factory=list)
    inline: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    source: str = ""
    raw: str = ""

    @property
    def findings(self) -> str:
        return self.sections.get("findings", "")

    @property
    def impression(self) -> str:
        return self.sections.get("impression", "")

    @property
    def indication(self) -> str:
        return self.sections.get("indication", "")

    @property
    def comparison(self) -> str:
        return self.sections.get("comparison", "")

    @property
    def draftable(self) -> bool:
        """A study can be drafted from it (it has findings)."""
        return bool(self.findings)

    @property
    def trainable(self) -> bool:
        """It is a study -> impression pair (findings and impression)."""
        return bool(self.findings and self.impression)

    def skip_reason(self, *, need_impression: bool) -> str | None:
        """Why it cannot be used (drafting needs findings; training and testing also an impression)."""
        if not self.findings:
            return NO_FINDINGS
        if need_impression and not self.impression:
            return NO_IMPRESSION
        return None

    def text(self) -> str:
        """The report as plain text with canonical headers (what the labeler and the index read)."""
        return "\n".join(f"{name.upper()}: {self.sections[name]}" for name in SECTION_FIELDS if self.sections.get(name))


@dataclass
class Ingested:
    """Reports read from one source, in order, and counts of why some cannot be used."""

    reports: list[Report]
    source: str

    def usable(self, *, need_impression: bool) -> tuple[list[Report], dict[str, int]]:
        """(usable reports in order, {reason: count} of the others)."""
        keep, skipped = [], Counter()
        for report in self.reports:
            reason = report.skip_reason(need_impression=need_impression)
            if reason is None:
                keep.append(report)
            else:
                skipped[reason] += 1
        return keep, dict(skipped)


def parse_mapping(pairs: list[str] | None) -> dict[str, str]:
    """`["field=column", ...]` as {field: column}; unknown fields or malformed pairs raise ValidationError."""
    mapping: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, column = pair.partition("=")
        name, column = name.strip(), column.strip()
        if not sep or not name or not column:
            raise ValidationError(f"--map {pair!r}: expected field=column, e.g. --map text=report_text")
        if name not in CANONICAL:
            raise ValidationError(f"--map {pair!r}: unknown field {name!r}; known fields: {', '.join(CANONICAL)}")
        mapping[name] = column
    return mapping


def report_from_text(
    text: str, *, report_id: str, hospital: str = "", source: str = "", note: str | None = None
) -> Report:
    """Parse one report's text into a Report."""
    parsed: ParsedReport = parse_sections(text)
    problems = ([note] if note else []) + parsed.problems
    return Report(report_id, hospital, parsed.sections, parsed.found, parsed.inline, problems, source, text)


def report_from_row(row: dict[str, object], mapping: dict[str, str], *, where: str, hospital: str) -> Report:
    """A Report from one JSONL/CSV row: its `text` parsed, or its section fields taken as they are."""
    get = {name: row.get(mapping.get(name, name)) for name in CANONICAL}
    values = {k: ("" if v is None else str(v)) for k, v in get.items()}
    report_id = values["report_id"] or where.rsplit(":", 1)[-1]
    hosp = values["hospital"] or hospital
    if values["text"].strip():
        report = report_from_text(values["text"], report_id=report_id, hospital=hosp, source=where)
        for name in SECTION_FIELDS:  # explicit fields win over the parsed text
            if values[name].strip():
                report.sections[name] = clean_section(values[name])
        return report
    sections = {name: clean_section(values[name]) for name in SECTION_FIELDS if values[name].strip()}
    if not sections:
        raise ValidationError(
            f"{where}: the row has neither `text` nor any section field ({', '.join(SECTION_FIELDS)})"
        )
    return Report(report_id, hosp, sections, [n for n in SECTION_FIELDS if n in sections], [], [], where)


def _rows_jsonl(path: Path) -> list[tuple[str, dict[str, object]]]:
    rows = []
    text, _ = decode(path.read_bytes())
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise ValidationError(f"{path}:{n}: expected a JSON object per line")
        rows.append((f"{path.name}:row{n}", row))
    return rows


def _rows_csv(path: Path) -> list[tuple[str, dict[str, object]]]:
    text, _ = decode(path.read_bytes())
    reader = csv.DictReader(io.StringIO(text.replace("\r\n", "\n")))
    return [(f"{path.name}:row{n}", dict(row)) for n, row in enumerate(reader, start=1)]


def read_reports(path: Path, mapping: dict[str, str] | None = None, *, hospital: str = "") -> Ingested:
    """Read reports from a folder, a .jsonl or a .csv file (anything else: one plain-text report).

    Args:
        path: the folder or file.
        mapping: {canonical field: key or column} for JSONL/CSV.
        hospital: hospital for reports that do not name one.

    Raises:
        NotFoundError: the path does not exist; ValidationError: a bad row (named by file and row) or mapping.
    """
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"reports {path} do not exist")
    mapping = mapping or {}
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise ValidationError(f"report folder {path} holds no files")
        reports = []
        for f in files:
            text, note = decode(f.read_bytes())
            reports.append(report_from_text(text, report_id=f.stem, hospital=hospital, source=str(f), note=note))
        return Ingested(reports, str(path))
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".csv"):
        rows = _rows_jsonl(path) if suffix != ".csv" else _rows_csv(path)
        keys = {k for _, row in rows for k in row}
        missing = [f"{name}={column}" for name, column in mapping.items() if column not in keys]
        if missing:
            raise ValidationError(
                f"{path}: mapped key(s) in no row: {', '.join(missing)}; keys: {', '.join(sorted(keys))}"
            )
        reports = [report_from_row(row, mapping, where=where, hospital=hospital) for where, row in rows]
        ids = Counter(r.report_id for r in reports)
        dupes = sorted(i for i, c in ids.items() if c > 1)
        if dupes:
            raise ValidationError(f"{path}: report id(s) repeated: {', '.join(dupes[:5])}")
        return Ingested(reports, str(path))
    text, note = decode(path.read_bytes())
    return Ingested(
        [report_from_text(text, report_id=path.stem, hospital=hospital, source=str(path), note=note)], str(path)
    )
