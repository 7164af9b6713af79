"""The three-tier data filter: format and syntax, semantic consistency, domain knowledge, then decontamination.

One pass over the input, one line at a time (lines are read with a byte limit, so a 1 GB file or a binary file with
no newline never sits in memory; the duplicate index lives in a temporary SQLite file, so memory stays flat however
many records are kept: bench/data.py measures it); each record goes through the tiers in order and stops at the
first that drops it. Kept records go to the output, dropped ones to `rejected.jsonl` beside it (line number, tier,
reason, detail, the masked record or a masked excerpt), and the counts to report.json. Outputs are written under
temporary names and renamed together at the end, so an interrupted run leaves nothing half-written; the same input
and options give the same output bytes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from core.atomic import atomic_file
from core.data.checks import DataChecks, Problem, RecordCheck
from core.data.decontam import REASON as DECONTAM_REASON
from core.data.decontam import Decontaminator
from core.data.dedup import Deduplicator, normalise
from core.data.pii import mask_pii
from core.data.records import Record
from core.data.report import FilterReport, TierStats
from core.data.syntax import REASONS as SYNTAX_REASONS
from core.data.syntax import REPAIRS, Parsed, SyntaxOptions, parse_line, record_text
from core.errors import NotFoundError

TIERS = ("syntax", "semantic", "knowledge", "decontamination")
CHECK_ERROR = {"check_error": "a domain check raised an error on this record (the detail names the check)"}
EXCERPT = 200
CHUNK = 1 << 20


@dataclass(frozen=True)
class FilterOptions:
    """Everything a run depends on besides the input and the domain.

    Attributes:
        syntax: tier-1 bounds.
        against: evaluation JSONL to decontaminate against (None skips that tier).
        overlap: share of n-grams that makes a record contaminated.
    """

    syntax: SyntaxOptions = field(default_factory=SyntaxOptions)
    against: Path | None = None
    overlap: float = 0.5


def word_count(record: Record) -> int:
    """Tokens when no tokenizer is given: words, each CJK character one."""
    return sum(len(normalise(m.content)) for m in record.messages if m.role != "system")


def tokenizer_count(tokenizer: Any) -> Callable[[Record], int]:
    """Tokens of the whole conversation as the target tokenizer renders it (chat template when it has one)."""

    def count(record: Record) -> int:
        messages = [{"role": m.role, "content": m.content} for m in record.messages]
        if getattr(tokenizer, "chat_template", None):
            return len(tokenizer.apply_chat_template(messages, tokenize=True))
        return len(tokenizer("\n".join(m["content"] for m in messages))["input_ids"])

    return count


def read_lines(handle: IO[bytes], max_bytes: int) -> Iterator[tuple[int, bytes, int]]:
    """(line number, line bytes without newline, full length) for each non-blank line; a line longer than
    `max_bytes` yields only its first `EXCERPT` bytes (the rest is skipped in chunks, never held)."""
    number = 0
    while True:
        line = handle.readline(max_bytes + 1)
        if not line:
            return
        number += 1
        if len(line) > max_bytes and not line.endswith(b"\n"):
            size, head = len(line), line[:EXCERPT]
            while True:
                rest = handle.readline(CHUNK)
                size += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
            yield number, head, size
            continue
        stripped = line.rstrip(b"\r\n")
        if stripped.strip():
            yield number, stripped, len(stripped)


class RecordFilter:
    """The tiers and their running state (duplicates seen, counts); feed it lines with `process`.

    Its state does not grow with the number of lines: the duplicate index is on disk (core.data.dedup), the counts
    are per reason code and the report keeps a few examples per code. Close it (or use it as a context manager) to
    remove the index's temporary folder.
    """

    def __init__(
        self,
        checks: DataChecks,
        options: FilterOptions,
        count_tokens: Callable[[Record], int] = word_count,
        *,
        source: str = "input",
    ) -> None:
        self.checks, self.options, self.count_tokens, self.source = checks, options, count_tokens, source
        self.decontam = Decontaminator(options.against, options.overlap) if options.against else None
        self.dedup = Deduplicator(options.syntax.near_dup)  # after anything that may raise: it makes a folder
        names = TIERS if self.decontam else TIERS[:3]
        self.stats = {name: TierStats(name) for name in names}
        self.descriptions = {**SYNTAX_REASONS, **REPAIRS, **CHECK_ERROR, **DECONTAM_REASON, **checks.reason_codes}

    def close(self) -> None:
        """Remove the duplicate index's temporary folder (the counts stay readable)."""
        self.dedup.close()

    def __enter__(self) -> RecordFilter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def report(self) -> FilterReport:
        """The counts so far, tiers in order."""
        return FilterReport(list(self.stats.values()))

    def _reject(self, tier: str, line: int, problem: Problem, record: Record | None, raw: bytes) -> dict[str, Any]:
        stats = self.stats[tier]
        stats.dropped += 1
        stats.reasons[problem.code] += 1
        stats.example(problem.code, line, problem.detail)
        out: dict[str, Any] = {"line": line, "tier": tier, "reason": problem.code, "detail": problem.detail}
        if record is not None:
            out["record"] = record.to_json()
        else:
            out["excerpt"] = mask_pii(raw[:EXCERPT].decode("utf-8", errors="replace"))
        return out

    def _run_checks(self, tier: str, checks: tuple[RecordCheck, ...], record: Record) -> tuple[Problem | None, list]:
        flags: list[Problem] = []
        for check in checks:
            try:
                problems = list(check(record))
            except Exception as exc:  # noqa: BLE001  (a failing check drops the record with its reason, never the run)
                name = getattr(check, "__name__", repr(check))
                return Problem("check_error", f"{name}: {type(exc).__name__}: {exc}"), flags
            for problem in problems:
                if problem.drop:
                    return problem, flags
                flags.append(problem)
        return None, flags

    def process(self, line: int, raw: bytes, size: int | None = None) -> tuple[bool, dict[str, Any]]:
        """Run one line through the tiers: (True, kept record JSON) or (False, rejection JSON)."""
        started = time.perf_counter()
        syntax = self.stats["syntax"]
        syntax.input += 1
        if size is not None and size > len(raw) and size > self.options.syntax.max_bytes:
            parsed: Parsed | Problem = Problem("too_large", f"{size:,} bytes; limit {self.options.syntax.max_bytes:,}")
        else:
            parsed = parse_line(raw, f"{self.source} line {line}", self.options.syntax, self.count_tokens)
        if isinstance(parsed, Problem):
            syntax.seconds += time.perf_counter() - started
            return False, self._reject("syntax", line, parsed, None, raw)
        record = parsed.record
        duplicate = self.dedup.check(record_text(record), line)
        syntax.seconds += time.perf_counter() - started
        if duplicate:
            code, first = duplicate
            return False, self._reject("syntax", line, Problem(code, f"same as line {first}"), record, raw)
        syntax.passed += 1
        for repair in parsed.repairs:
            syntax.repairs[repair] += 1
        if parsed.pii:
            syntax.repairs["pii_masked"] += 1
            for kind, n in parsed.pii.items():
                syntax.repairs[f"pii_masked.{kind}"] += n
        flags: list[Problem] = []
        for tier, checks in (("semantic", self.checks.semantic), ("knowledge", self.checks.knowledge)):
            stats = self.stats[tier]
            stats.input += 1
            started = time.perf_counter()
            problem, tier_flags = self._run_checks(tier, checks, record)
            stats.seconds += time.perf_counter() - started
            if problem:
                return False, self._reject(tier, line, problem, record, raw)
            stats.passed += 1
            for flag in tier_flags:
                stats.flags[flag.code] += 1
                stats.example(flag.code, line, flag.detail)
            stats.flagged += bool(tier_flags)
            flags.extend(tier_flags)
        if self.decontam:
            stats = self.stats["decontamination"]
            stats.input += 1
            started = time.perf_counter()
            share = self.decontam.overlap(record)
            stats.seconds += time.perf_counter() - started
            if share >= self.options.overlap:
                detail = f"{share:.0%} of its 8-grams are in {self.options.against}"
                return False, self._reject("decontamination", line, Problem("eval_overlap", detail), record, raw)
            stats.passed += 1
        out = record.to_json()
        if flags:
            meta = dict(out.get("meta") or {})
            meta["filter_flags"] = sorted({f.code for f in flags})
            out["meta"] = meta
        return True, out


@dataclass
class FilterResult:
    """What a run wrote, and its counts (with per-tier seconds, which report.json leaves out)."""

    output: Path
    rejected: Path
    report_path: Path
    report: FilterReport
    descriptions: dict[str, str]


def rejected_path(output: Path, name: str = "rejected.jsonl") -> Path:
    """The rejected records' file beside the output."""
    return output.with_name(name)


def run_filter(
    input_path: Path,
    output: Path,
    report_path: Path,
    *,
    checks: DataChecks,
    domain: str,
    options: FilterOptions,
    count_tokens: Callable[[Record], int] = word_count,
    progress: Callable[[int], None] | None = None,
) -> FilterResult:
    """Filter `input_path` into `output`, `rejected.jsonl` beside it and `report_path` (see the module docstring).

    Args:
        progress: called with the number of bytes read after each line.

    Raises:
        NotFoundError: the input (or the --against file) does not exist; nothing is written.
    """
    input_path, output, report_path = Path(input_path), Path(output), Path(report_path)
    if not input_path.is_file():
        raise NotFoundError(f"--in {input_path}: no such file")
    flt = RecordFilter(checks, options, count_tokens, source=input_path.name)
    rejected = rejected_path(output)
    with ExitStack() as stack:
        stack.enter_context(flt)
        tmp_out = stack.enter_context(atomic_file(output))
        tmp_rej = stack.enter_context(atomic_file(rejected))
        tmp_report = stack.enter_context(atomic_file(report_path))
        with (
            input_path.open("rb") as src,
            tmp_out.open("w", encoding="utf-8") as out,
            tmp_rej.open("w", encoding="utf-8") as rej,
        ):
            for number, raw, size in read_lines(src, options.syntax.max_bytes):
                kept, obj = flt.process(number, raw, size)
                (out if kept else rej).write(json.dumps(obj, ensure_ascii=False, sort_keys=True) + "\n")
                if progress:
                    progress(src.tell())
        report = flt.report()
        report.check_totals()
        body = report.to_json(
            flt.descriptions,
            input=input_path.name,
            output=output.name,
            rejected=rejected.name,
            domain=domain,
            options={
                "max_bytes": options.syntax.max_bytes,
                "min_tokens": options.syntax.min_tokens,
                "max_tokens": options.syntax.max_tokens,
                "languages": list(options.syntax.languages),
                "near_dup": options.syntax.near_dup,
                "against": options.against.name if options.against else None,
                "overlap": options.overlap,
            },
        )
        tmp_report.write_text(json.dumps(body, ensure_ascii=False, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return FilterResult(output, rejected, report_path, report, flt.descriptions)
