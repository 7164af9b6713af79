"""The three-tier filter's core: every tier-1 reason code fires on a record that has it and not on one that lacks
it, counts add up, rejected records are kept with their reason, decontamination, idempotent atomic outputs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.data.checks import DataChecks, Problem
from core.data.filter import FilterOptions, RecordFilter, run_filter
from core.data.records import Record
from core.data.syntax import REASONS, SyntaxOptions
from core.errors import NotFoundError


def answer_not_empty_of_digits(record: Record) -> Iterator[Problem]:
    """A test domain's tier-2 check: the answer must not repeat the question."""
    if record.answer.strip() == record.messages[-2].content.strip():
        yield Problem("echo", "the answer repeats the question")


def flag_short(record: Record) -> Iterator[Problem]:
    """A test domain's tier-3 check that only flags."""
    if len(record.answer) < 10:
        yield Problem("short_answer", "short", drop=False)


def raises(record: Record) -> Iterator[Problem]:
    if "boom" in record.answer:
        raise RuntimeError("boom")
    return iter(())


CHECKS = DataChecks(
    semantic=(answer_not_empty_of_digits,),
    knowledge=(flag_short, raises),
    reason_codes={"echo": "answer repeats the question", "short_answer": "answer under 10 characters"},
    languages=("en",),
)


def line(user: str, answer: str) -> bytes:
    return json.dumps(
        {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}
    ).encode()


GOOD = line(
    "Describe the account activity of last week please.", "Three card payments at regular shops, all in daytime."
)


def run_one(raw: bytes, options: FilterOptions | None = None, checks: DataChecks = CHECKS) -> tuple[bool, dict]:
    return RecordFilter(checks, options or FilterOptions()).process(1, raw)


@pytest.mark.parametrize(
    ("code", "bad", "options"),
    [
        ("too_large", GOOD + b" " * 100, FilterOptions(syntax=SyntaxOptions(max_bytes=len(GOOD) + 10))),
        ("binary_data", b"\x00\x01PK\x03\x04" + GOOD, None),
        ("not_utf8", '{"prompt": "caf\u00e9", "completion": "ok"}'.encode("latin-1"), None),
        ("bad_json", GOOD[:-7], None),
        ("bad_record", b'{"messages": [{"role": "user", "content": "hi"}]}', None),
        ("too_short", line("hi", "ok"), FilterOptions(syntax=SyntaxOptions(min_tokens=5))),
        ("too_long", GOOD, FilterOptions(syntax=SyntaxOptions(max_tokens=5))),
        (
            "wrong_language",
            line("Décrivez l'activité du compte de la semaine dernière.", "Trois paiements par carte en journée."),
            None,
        ),
    ],
)
def test_each_tier1_reason_fires_and_not_on_a_good_record(code: str, bad: bytes, options: FilterOptions | None) -> None:
    assert code in REASONS
    kept, obj = run_one(bad, options)
    assert not kept and obj["reason"] == code and obj["tier"] == "syntax" and obj["line"] == 1
    kept, _ = run_one(GOOD, options if code not in ("too_large", "too_long") else None)
    assert kept


def test_duplicates_exact_and_near() -> None:
    flt = RecordFilter(CHECKS, FilterOptions())
    base = (
        "Three card payments at regular shops in daytime, then one transfer to savings and a coffee at noon. "
        "The account holder usually pays rent on the first of the month and buys groceries on Saturdays; "
        "nothing in this week departs from that pattern, and no new device or location was seen at all."
    )
    assert flt.process(1, line("Summarise the week of account A1 for the analyst.", base))[0]
    kept, obj = flt.process(2, line("summarise the week of account A1, for the analyst!", base))
    assert not kept and obj["reason"] == "exact_duplicate" and obj["detail"] == "same as line 1"
    near = base.replace("at all.", "at all here.")
    kept, obj = flt.process(3, line("Summarise the week of account A1 for the analyst.", near))
    assert not kept and obj["reason"] == "near_duplicate"
    assert flt.process(4, line("List the night transfers of account B7 for review.", "None were made at night."))[0]


def test_mojibake_repaired_and_pii_masked_are_counted_not_dropped() -> None:
    flt = RecordFilter(CHECKS, FilterOptions())
    raw = line("The cafÃ© charge, card 4111 1111 1111 1111, was it fraud?", "The cafe charge looks legitimate.")
    kept, obj = flt.process(1, raw)
    assert kept
    assert "café" in obj["messages"][0]["content"] and "[CARD]" in obj["messages"][0]["content"]
    syntax = flt.stats["syntax"]
    assert syntax.repairs["mojibake_repaired"] == 1 and syntax.repairs["pii_masked.CARD"] == 1


def test_domain_checks_drop_flag_and_errors() -> None:
    flt = RecordFilter(CHECKS, FilterOptions())
    kept, obj = flt.process(1, line("Repeat the following words back to me.", "Repeat the following words back to me."))
    assert not kept and (obj["tier"], obj["reason"]) == ("semantic", "echo")
    kept, obj = flt.process(2, line("Is a single card payment at noon risky at all?", "No risk."))
    assert kept and obj["meta"]["filter_flags"] == ["short_answer"]
    kept, obj = flt.process(3, line("What happens when the check fails on this record?", "It goes boom loudly."))
    assert not kept and obj["reason"] == "check_error" and "raises: RuntimeError: boom" in obj["detail"]
    knowledge = flt.stats["knowledge"]
    assert (knowledge.input, knowledge.passed, knowledge.dropped, knowledge.flagged) == (2, 1, 1, 1)


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_run_counts_add_up_rejected_kept_and_idempotent(tmp_path: Path) -> None:
    lines = [
        GOOD,
        GOOD,  # exact duplicate
        GOOD[:-9],  # truncated JSON
        '{"prompt": "Caf\u00e9 bill", "completion": "fine"}'.encode("cp1252"),  # wrong encoding
        line("Summarise this big field please.", "x " * 600_000),  # a 1.2 MB field over the 1 MB line limit
        b"\x7fELF\x02\x01\x01\x00\x00\x00",  # binary
        line("Repeat the following words back to me.", "Repeat the following words back to me."),
        line("Which merchants did account C3 use last month?", "Two grocery shops and one fuel station."),
    ]
    src = _write(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out" / "clean.jsonl"
    result = run_filter(src, out, out.with_name("report.json"), checks=CHECKS, domain="test", options=FilterOptions())
    report = json.loads(result.report_path.read_text())
    rejected = [json.loads(x) for x in result.rejected.read_text().splitlines()]
    kept = out.read_text().splitlines()
    assert report["records_in"] == 8 and report["records_out"] == len(kept) == 2
    for tier in report["tiers"]:
        assert tier["passed"] + tier["dropped"] == tier["input"]
        assert sum(r["count"] for r in tier["reasons"].values()) == tier["dropped"]
    assert sum(t["dropped"] for t in report["tiers"]) == len(rejected) == 6
    assert {(r["line"], r["reason"]) for r in rejected} == {
        (2, "exact_duplicate"),
        (3, "bad_json"),
        (4, "not_utf8"),
        (5, "too_large"),
        (6, "binary_data"),
        (7, "echo"),
    }
    assert report["tiers"][0]["reasons"]["bad_json"]["examples"][0]["line"] == 3
    first = (out.read_bytes(), result.rejected.read_bytes(), result.report_path.read_bytes())
    run_filter(src, out, out.with_name("report.json"), checks=CHECKS, domain="test", options=FilterOptions())
    assert (out.read_bytes(), result.rejected.read_bytes(), result.report_path.read_bytes()) == first
    assert sorted(p.name for p in out.parent.iterdir()) == ["clean.jsonl", "rejected.jsonl", "report.json"]


def test_missing_input_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "o" / "clean.jsonl"
    with pytest.raises(NotFoundError, match="no such file"):
        run_filter(
            tmp_path / "nope.jsonl", out, tmp_path / "r.json", checks=CHECKS, domain="t", options=FilterOptions()
        )
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_decontamination_drops_eval_overlap_only(tmp_path: Path) -> None:
    evaluation = tmp_path / "eval.jsonl"
    held_out = line("Account D9 sent 4,000 to a new payee at 03:12 from another country.", "Risk level: 5; high.")
    _write(evaluation, [held_out, line("Account E1 paid rent on the first as always.", "Risk level: 0; none.")])
    options = FilterOptions(against=evaluation)
    kept, obj = run_one(held_out, options)
    assert not kept and (obj["tier"], obj["reason"]) == ("decontamination", "eval_overlap")
    assert run_one(GOOD, options)[0]


def test_interrupted_run_leaves_no_output(tmp_path: Path) -> None:
    src = _write(tmp_path / "in.jsonl", [GOOD, line("Which merchants did account C3 use?", "Two grocery shops.")])
    out = tmp_path / "o" / "clean.jsonl"
    out.parent.mkdir()

    def stop(_done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_filter(
            src, out, out.with_name("report.json"), checks=CHECKS, domain="t", options=FilterOptions(), progress=stop
        )
    assert list(out.parent.iterdir()) == []
