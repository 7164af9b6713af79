"""`finmed data augment`: back-translation and knowledge-graph substitution, each variant re-passing the filter.

Streams the filtered input once. Every original record is written as it is; each variant carries
`meta.augmented_from` (the original's line number and content hash) and `meta.augmentation` (the method and what
changed), and goes through a fresh `RecordFilter` (all three tiers, duplicates counted among the variants only, so
a variant is not dropped for resembling its own original). Variants the filter drops are in
`augment-rejected.jsonl` beside the output with their reason; the counts in the report. Outputs are atomic, and
the same input, options and translator give the same output.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.atomic import atomic_file
from core.data.checks import DataChecks, TextSpan, last_user_span
from core.data.filter import FilterOptions, FilterResult, RecordFilter, read_lines, rejected_path, word_count
from core.data.records import Message, Record, parse_record
from core.data.substitute import Substituter
from core.data.syntax import SyntaxOptions
from core.data.translate import NEEDS_TRANSLATOR, CausalTranslator, Seq2SeqTranslator, Translate
from core.errors import NotFoundError, ValidationError

METHODS = ("backtranslate", "kg-substitute")
REJECTED = "augment-rejected.jsonl"  # beside the output, apart from the filter's rejected.jsonl
BATCH = 16  # records whose spans are translated together


@dataclass(frozen=True)
class AugmentOptions:
    """What `finmed data augment` was asked for (see its --help)."""

    method: str
    translator: str | None = None
    back_translator: str | None = None
    kind: str = "seq2seq"
    source_lang: str = "zh"
    pivot_lang: str = "en"
    per_record: int = 1
    seed: int = 0
    languages: tuple[str, ...] = ("en", "zh")
    max_new_tokens: int = 256

    def translator_or_error(self) -> Translate | None:
        """The translator for back-translation (None for other methods), or one clear error."""
        if self.method not in METHODS:
            raise ValidationError(f"--method {self.method!r}: use one of {', '.join(METHODS)}")
        if self.method != "backtranslate":
            return None
        if not self.translator:
            raise ValidationError(NEEDS_TRANSLATOR)
        if self.kind == "causal":
            return CausalTranslator(self.translator, max_new_tokens=self.max_new_tokens)
        if self.kind != "seq2seq":
            raise ValidationError(f"--kind {self.kind!r}: use seq2seq or causal")
        return Seq2SeqTranslator(
            self.translator, self.back_translator, source=self.source_lang, max_new_tokens=self.max_new_tokens
        )


@dataclass
class AugmentResult:
    """Counts of one run and the re-filter's result (its report is the augment report)."""

    originals: int
    generated: int
    kept: int
    filter: FilterResult


def content_hash(record: Record) -> str:
    """A short stable id of a record's text."""
    text = "\x1f".join(f"{m.role}\x1e{m.content}" for m in record.messages)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def clean_translation(text: str) -> str:
    """A translation without control characters (translators emit them on odd input), stripped."""
    return "".join(ch for ch in text if ch.isprintable() or ch in "\n\t").strip()


def _replace_spans(record: Record, spans: list[TextSpan], texts: list[str]) -> Record:
    messages = list(record.messages)
    for span, text in sorted(zip(spans, texts, strict=True), key=lambda x: -x[0].start):
        m = messages[span.message]
        messages[span.message] = Message(m.role, m.content[: span.start] + text + m.content[span.end :])
    return Record(tuple(messages), record.meta)


def _tag(record: Record, line: int, original: Record, method: str, **detail: Any) -> dict[str, Any]:
    meta = {k: v for k, v in record.meta.items() if k != "filter_flags"}
    meta["augmented_from"] = {"line": line, "hash": content_hash(original)}
    meta["augmentation"] = {"method": method, **detail}
    return Record(record.messages, meta).to_json()


def backtranslate(
    batch: list[tuple[int, Record]], checks: DataChecks, translate: Translate, source: str, pivot: str
) -> list[dict[str, Any]]:
    """Variants of a batch of records: their free-text spans translated to the pivot language and back."""
    free_text = checks.free_text or last_user_span
    spans = [(line, record, free_text(record)) for line, record in batch]
    texts = [r.messages[s.message].content[s.start : s.end] for _, r, ss in spans for s in ss]
    if not texts:
        return []
    there = translate(texts, source, pivot)
    back = [clean_translation(t) for t in translate(there, pivot, source)]
    out, i = [], 0
    for line, record, ss in spans:
        new = back[i : i + len(ss)]
        i += len(ss)
        if not ss or new == texts[i - len(ss) : i]:
            continue  # unchanged: nothing new to learn from
        variant = _replace_spans(record, ss, new)
        out.append(_tag(variant, line, record, "backtranslate", pivot=pivot))
    return out


def run_augment(
    input_path: Path,
    output: Path,
    report_path: Path,
    *,
    checks: DataChecks,
    domain: str,
    options: AugmentOptions,
    translate: Translate | None,
    count_tokens: Callable[[Record], int] = word_count,
    progress: Callable[[int], None] | None = None,
) -> AugmentResult:
    """Write originals and the variants that re-pass the filter to `output` (see the module docstring).

    Raises:
        NotFoundError: no input file. ValidationError: an input line is not a record (run `finmed data filter`
        first), or the method needs what was not given.
    """
    input_path, output, report_path = Path(input_path), Path(output), Path(report_path)
    if not input_path.is_file():
        raise NotFoundError(f"--in {input_path}: no such file")
    if options.method == "backtranslate" and translate is None:
        raise ValidationError(NEEDS_TRANSLATOR)
    substituter = None
    if options.method == "kg-substitute":
        if checks.vocabulary is None:
            raise ValidationError(f"--domain {domain}: the domain registers no substitution vocabulary")
        substituter = Substituter(checks.vocabulary())
    syntax = SyntaxOptions(languages=options.languages, max_tokens=1_000_000, min_tokens=1)
    refilter = RecordFilter(checks, FilterOptions(syntax=syntax), count_tokens, source="variants")
    originals = generated = kept = 0
    with ExitStack() as stack:
        stack.enter_context(refilter)
        tmp_out = stack.enter_context(atomic_file(output))
        tmp_rej = stack.enter_context(atomic_file(rejected_path(output, REJECTED)))
        tmp_report = stack.enter_context(atomic_file(report_path))
        with (
            input_path.open("rb") as src,
            tmp_out.open("w", encoding="utf-8") as out,
            tmp_rej.open("w", encoding="utf-8") as rej,
        ):

            def emit(variants: list[dict[str, Any]]) -> None:
                nonlocal generated, kept
                for variant in variants:
                    generated += 1
                    raw = json.dumps(variant, ensure_ascii=False).encode("utf-8")
                    ok, obj = refilter.process(generated, raw)
                    if ok:
                        kept += 1
                        out.write(json.dumps(obj, ensure_ascii=False, sort_keys=True) + "\n")
                    else:
                        obj["augmented_from"] = variant["meta"]["augmented_from"]
                        rej.write(json.dumps(obj, ensure_ascii=False, sort_keys=True) + "\n")

            batch: list[tuple[int, Record]] = []
            for number, raw, _size in read_lines(src, 50_000_000):
                try:
                    record = parse_record(json.loads(raw), f"{input_path.name} line {number}")
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise ValidationError(
                        f"{input_path.name} line {number}: not JSON ({exc}); run `finmed data filter` first"
                    ) from None
                originals += 1
                out.write(json.dumps(record.to_json(), ensure_ascii=False, sort_keys=True) + "\n")
                if substituter is not None:
                    emit(
                        [
                            _tag(
                                v,
                                number,
                                record,
                                "kg-substitute",
                                replaced=s.old,
                                by=s.new,
                                relation=s.relation,
                                source=s.source,
                            )
                            for v, s in substituter.variants(record, options.per_record, options.seed)
                        ]
                    )
                else:
                    batch.append((number, record))
                    if len(batch) >= BATCH:
                        emit(backtranslate(batch, checks, translate, options.source_lang, options.pivot_lang))
                        batch = []
                if progress:
                    progress(src.tell())
            if batch:
                emit(backtranslate(batch, checks, translate, options.source_lang, options.pivot_lang))
        report = refilter.report()
        report.check_totals()
        body = report.to_json(
            refilter.descriptions,
            input=input_path.name,
            output=output.name,
            rejected=rejected_path(output, REJECTED).name,
            domain=domain,
            method=options.method,
            originals=originals,
            variants_generated=generated,
            variants_kept=kept,
        )
        tmp_report.write_text(json.dumps(body, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    result = FilterResult(output, rejected_path(output, REJECTED), report_path, report, refilter.descriptions)
    return AugmentResult(originals, generated, kept, result)
