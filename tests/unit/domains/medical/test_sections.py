"""Section parser and report ingest on the layouts hospitals export: reported, never crashed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import ValidationError
from domains.medical.ingest import NO_FINDINGS, NO_IMPRESSION, read_reports
from domains.medical.sections import decode, parse_sections


def test_own_line_headers_preamble_crlf_and_wrapped_lines() -> None:
    text = (
        "FINAL REPORT\r\nEXAMINATION:  CHEST (PA AND LAT)\r\n\r\nINDICATION:  ___F with cough\r\n\r\n"
        "FINDINGS: \r\nThe lungs are clear. No\r\n pneumothorax.\r\n\r\n"
        "IMPRESSION: \r\n1. No acute process.\r\n2. Stable.\r\n"
    )
    parsed = parse_sections(text)
    assert parsed.found == ["examination", "indication", "findings", "impression"]
    assert parsed.sections["findings"] == "The lungs are clear. No pneumothorax."  # wrapped line joined
    assert parsed.sections["impression"] == "1. No acute process.\n2. Stable."  # numbered items keep their lines
    assert parsed.sections["indication"] == "___F with cough" and parsed.preamble == "" and not parsed.problems


def test_inline_and_mixed_case_headers_are_found_and_reported() -> None:
    parsed = parse_sections("History: fever. Findings: clear lungs.  IMPRESSION: normal.")
    assert parsed.sections == {"indication": "fever.", "findings": "clear lungs.", "impression": "normal."}
    assert parsed.inline == ["findings", "impression"]


def test_headers_without_colon_alone_on_their_line() -> None:
    parsed = parse_sections("Reason for exam\nPost line.\nFindings\nLungs clear.\nConclusion\nNormal.")
    assert parsed.sections == {"indication": "Post line.", "findings": "Lungs clear.", "impression": "Normal."}


def test_prose_that_starts_with_a_header_word_is_not_a_header() -> None:
    parsed = parse_sections("FINDINGS: Findings are unchanged from before.\nIMPRESSION: Stable.")
    assert parsed.sections["findings"] == "Findings are unchanged from before."


def test_missing_sections_and_no_headers_are_problems_not_errors() -> None:
    assert parse_sections("just some free text").problems == ["no section headers found"]
    parsed = parse_sections("FINDINGS:\n\nIMPRESSION: ok\nIMPRESSION: again")
    assert "section findings is empty" in parsed.problems
    assert any("more than once" in p for p in parsed.problems) and parsed.sections["impression"] == "ok\nagain"


def test_non_utf8_bytes_and_blank_runs() -> None:
    text, note = decode("FINDINGS: caf\xe9 opacity ____ seen.".encode("cp1252"))
    assert "café" in text and note is not None and "Windows-1252" in note
    assert parse_sections(text).sections["findings"] == "café opacity ___ seen."
    assert decode(b"\xef\xbb\xbfFINDINGS: x")[0] == "FINDINGS: x" and decode(b"ok")[1] is None


def test_folder_ingest_counts_skipped_reports(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"FINDINGS: No effusion.\r\nIMPRESSION: Normal.\r\n")
    (tmp_path / "b.rpt").write_bytes("FINDINGS: Small effusion \xe9.\nno impression here".encode("cp1252"))
    (tmp_path / "c").write_text("IMPRESSION: only an impression")
    ingested = read_reports(tmp_path, hospital="h1")
    assert [r.report_id for r in ingested.reports] == ["a", "b", "c"]
    train, skipped = ingested.usable(need_impression=True)
    assert [r.report_id for r in train] == ["a"] and skipped == {NO_IMPRESSION: 1, NO_FINDINGS: 1}
    drafts, skipped = ingested.usable(need_impression=False)
    assert [r.report_id for r in drafts] == ["a", "b"] and skipped == {NO_FINDINGS: 1}
    assert any("Windows-1252" in p for p in ingested.reports[1].problems)


def test_jsonl_and_csv_with_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    rows = [{"acc": "x1", "body": "FINDINGS: Clear.\nIMPRESSION: Normal."}, {"acc": "x2", "findings": "Edema."}]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    ingested = read_reports(path, {"report_id": "acc", "text": "body"})
    assert [r.report_id for r in ingested.reports] == ["x1", "x2"]
    assert ingested.reports[0].impression == "Normal." and ingested.reports[1].findings == "Edema."
    csv = tmp_path / "r.csv"
    csv.write_text("id,findings,impression\nr1,Effusion.,Left effusion.\n")
    assert read_reports(csv, {"report_id": "id"}).reports[0].trainable
    with pytest.raises(ValidationError, match="mapped key.*in no row"):
        read_reports(path, {"text": "nope"})
    (tmp_path / "bad.jsonl").write_text('{"text": "FINDINGS: a"}\nnot json\n')
    with pytest.raises(ValidationError, match=r"bad.jsonl:2"):
        read_reports(tmp_path / "bad.jsonl")
