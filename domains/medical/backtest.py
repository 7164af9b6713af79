"""Backtest of the two-stage idea: base vs stage 2 alone vs stage 1 + stage 2, drafting held-out impressions.

Report order is kept: stage 2 trains on the first 80% of usable reports (findings and impression) and drafts the
last 20%. Three variants, each exported at the recommended precision and drafted through the serving engine
(domains.medical.drafting.InProcessEngine over core.serving's ServingState): `base` (no adapter), `stage2` (the
hospital adapter on the plain base) and `two_stage` (the hospital adapter on the stage-1 base). Stage 1 trains on
its own mix (domains.medical.training.Stage1Mix: vocabulary records and a general corpus of reports in other styles;
the caller leaves the hospital's and the test reports' styles out of it) for its own number of steps, and is trained
once per base, settings and mix and cached under DATA_DIR/medical/stage1-cache. Writes metrics.json (exactly the
keys METRICS_KEYS / VARIANT_KEYS), drafts.jsonl and report.md (a table and examples side by side).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import write_bytes_atomic
from core.errors import ValidationError
from domains.medical.agreement import agreement, bleu4, finding_f1, rouge_l
from domains.medical.drafting import Draft, InProcessEngine, draft_reports
from domains.medical.exports import RECOMMENDED_PRECISION, export_folder
from domains.medical.ingest import Ingested, Report
from domains.medical.labeler import label_report
from domains.medical.training import CONFIGS, Stage1Mix, read_lineage, train_stage1, train_stage2

VARIANTS = ("base", "stage2", "two_stage")
VARIANT_KEYS = ("rouge_l", "bleu4", "finding_f1_micro", "finding_f1_macro", "agreement", "p95_latency_ms")
METRICS_KEYS = (*VARIANTS, "n_train", "n_test", "skipped")
TRAIN_SHARE = 0.8


@dataclass
class BacktestResult:
    """metrics.json's content, the drafts per variant, the test reports and the stage-1 base's lineage."""

    metrics: dict[str, Any]
    drafts: dict[str, list[Draft]] = field(default_factory=dict)
    test: list[Report] = field(default_factory=list)
    stage1: dict[str, Any] = field(default_factory=dict)


def split(reports: list[Report], share: float = TRAIN_SHARE) -> tuple[list[Report], list[Report]]:
    """(first `share` of reports, the rest), order kept; both non-empty or ValidationError."""
    cut = int(round(len(reports) * share))
    if cut < 1 or cut >= len(reports):
        raise ValidationError(
            f"{len(reports)} usable report(s): a backtest needs at least 2 (one to train, one to test)"
        )
    return reports[:cut], reports[cut:]


def variant_metrics(drafts: list[Draft], references: list[Report]) -> dict[str, float]:
    """The M block of one variant (see domains.medical.agreement)."""
    preds = [d.text for d in drafts]
    refs = [r.impression for r in references]
    pred_labels = [d.labels for d in drafts]
    ref_labels = [label_report(t) for t in refs]
    micro, macro = finding_f1(pred_labels, ref_labels)
    latency = [d.latency_ms for d in drafts]
    return {
        "rouge_l": float(np.mean([rouge_l(p, r) for p, r in zip(preds, refs, strict=True)])) if preds else 0.0,
        "bleu4": bleu4(preds, refs),
        "finding_f1_micro": micro,
        "finding_f1_macro": macro,
        "agreement": agreement(pred_labels, ref_labels),
        "p95_latency_ms": float(np.percentile(latency, 95)) if latency else 0.0,
    }


def stage1_cache(data_dir: Path, base: str, overrides: list[str], mix: Stage1Mix) -> Path:
    """The cache folder of stage 1 for a base and settings (keyed by base, overrides, config file and mix)."""
    key = json.dumps([base, overrides, mix.as_dict(), (CONFIGS / "medical-stage1.yaml").read_text()], sort_keys=True)
    return Path(data_dir) / "medical" / "stage1-cache" / hashlib.sha256(key.encode()).hexdigest()[:12]


def cached_stage1(data_dir: Path, *, base: str, overrides: list[str], mix: Stage1Mix) -> Path:
    """The stage-1 base folder for `base`, trained now unless the cache holds it."""
    cache = stage1_cache(data_dir, base, overrides, mix)
    folder = cache / "stage1-base"
    if read_lineage(folder):
        return folder
    _, folder = train_stage1(cache, base=base, overrides=overrides, mix=mix, show_progress=False)
    return folder


def run_backtest(
    ingested: Ingested,
    out: Path,
    *,
    base: str,
    data_dir: Path,
    hospital: str = "",
    overrides: list[str] | None = None,
    stage1_overrides: list[str] | None = None,
    stage2_overrides: list[str] | None = None,
    stage1_mix: Stage1Mix | None = None,
    precision: str = RECOMMENDED_PRECISION,
    say: Callable[[str], None] = lambda _msg: None,
    advance: Callable[[int], None] = lambda _n: None,
) -> BacktestResult:
    """Train and draft the three variants on `ingested` and write metrics.json, drafts.jsonl and report.md to `out`.

    Args:
        base: the base model ('default', a folder).
        data_dir: where stage 1 is cached.
        hospital: the hospital the adapters are named for (default: the reports' own, else "hospital").
        overrides: `section.key=value` overrides of both stage configs (e.g. dataset.max_length=160).
        stage1_overrides, stage2_overrides: overrides of one stage only, applied after `overrides` (e.g. each
            stage's train.max_steps; stage 1 otherwise trains configs/medical-stage1.yaml's own steps).
        stage1_mix: stage 1's records (default Stage1Mix(): every synthetic style; a caller that knows the styles of
            its reports leaves them out with Stage1Mix.excluding).
        say, advance: progress callbacks (step names; drafts finished).
    """
    usable, skipped = ingested.usable(need_impression=True)
    train, test = split(usable)
    hospital = hospital or (train[0].hospital or "hospital")
    stage2 = [*(overrides or []), *(stage2_overrides or [])]
    stage1 = [*(overrides or []), *(stage1_overrides or [])]
    out = Path(out)
    folders: dict[str, Path] = {}
    say("exporting the base model")
    folders["base"] = export_folder(out / "exports" / "base", model=base, precision=precision)
    say("stage 2 on the plain base")
    run = train_stage2(train, out / "runs" / "stage2", hospital=hospital, base=base, overrides=stage2,
                       show_progress=False)  # fmt: skip
    folders["stage2"] = export_folder(out / "exports" / "stage2", run_dir=run, precision=precision)
    say("stage 1 (cached once per base, settings and mix)")
    stage1_base = cached_stage1(data_dir, base=base, overrides=stage1, mix=stage1_mix or Stage1Mix())
    say("stage 2 on the stage-1 base")
    run = train_stage2(train, out / "runs" / "two_stage", hospital=hospital, base=str(stage1_base), overrides=stage2,
                       show_progress=False)  # fmt: skip
    folders["two_stage"] = export_folder(out / "exports" / "two_stage", run_dir=run, precision=precision)
    result = BacktestResult({}, test=test, stage1=read_lineage(stage1_base))
    for name in VARIANTS:
        say(f"drafting {len(test)} studies with {name}")
        engine = InProcessEngine(folders[name], name=f"medical-{name.replace('_', '-')}")
        try:
            result.drafts[name] = draft_reports(engine, test, on_done=advance)
        finally:
            engine.close()
    result.metrics = {name: variant_metrics(result.drafts[name], test) for name in VARIANTS}
    result.metrics.update({"n_train": len(train), "n_test": len(test), "skipped": skipped})
    write_report(result, out, precision=precision)
    return result


def stage1_line(lineage: dict[str, Any]) -> str:
    """One line saying what the two_stage variant's stage 1 trained on (records per source, styles, steps)."""
    if not lineage:
        return "Stage 1: no lineage recorded."
    records, mix = lineage.get("records", {}), lineage.get("mix") or {}
    sources = ", ".join(f"{k} {v}" for k, v in sorted(records.get("by_source", {}).items()))
    steps = lineage.get("config", {}).get("train", {}).get("max_steps")
    styles = ", ".join(mix.get("styles", [])) or "none"
    return (f"Stage 1 (two_stage): {records.get('count', 0)} records ({sources}); general-corpus styles: {styles}; "
            f"seed {mix.get('seed')}; max {steps} steps.")  # fmt: skip


def _fmt(value: float) -> str:
    return f"{value:.1f}" if value > 1.5 else f"{value:.3f}"


def write_report(result: BacktestResult, out: Path, *, precision: str, examples: int = 5) -> None:
    """metrics.json, drafts.jsonl and report.md into `out`, each written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    m = result.metrics
    write_bytes_atomic(out / "metrics.json", json.dumps(m, indent=2).encode())
    lines = []
    for i, report in enumerate(result.test):
        row = {"report": report.report_id, "reference": report.impression}
        row.update({name: result.drafts[name][i].text for name in VARIANTS})
        lines.append(json.dumps(row, ensure_ascii=False))
    write_bytes_atomic(out / "drafts.jsonl", ("\n".join(lines) + "\n").encode())
    skipped = ", ".join(f"{k}: {v}" for k, v in m["skipped"].items()) or "none"
    md = [
        "# Medical backtest",
        "",
        f"Train reports (first 80%): {m['n_train']}; test reports: {m['n_test']}; skipped: {skipped}. "
        f"Drafts served at {precision} through the serving engine.",
        "",
        stage1_line(result.stage1),
        "",
        "| variant | " + " | ".join(VARIANT_KEYS) + " |",
        "|---" * (len(VARIANT_KEYS) + 1) + "|",
    ]
    md += [f"| {name} | " + " | ".join(_fmt(m[name][k]) for k in VARIANT_KEYS) + " |" for name in VARIANTS]
    md += ["", "## Examples", ""]
    for i, report in enumerate(result.test[:examples]):
        md += [f"### {report.report_id}", "", f"- findings: {report.findings}", f"- reference: {report.impression}"]
        md += [f"- {name}: {result.drafts[name][i].text or '(empty)'}" for name in VARIANTS]
        md.append("")
    write_bytes_atomic(out / "report.md", "\n".join(md).encode())
