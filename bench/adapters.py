"""Benchmark of several LoRA adapters on one served base against one full export per adapter.

In one run, on the default model:
1. Three adapters trained briefly on their own data through core.finetune (the configs' layout: r=16 on q/k/v/o/up/
   down of the top 12 layers): `finance` (risk prompts), `st_marys` (a hospital's stage 2 on the plain base) and
   `lakeside` (two-stage: a stage-1 LoRA on vocabulary records, merged, then the hospital's stage 2 on it, served as
   one rank-32 adapter on the plain base).
2. Exports at the serving precision (int4 unless --precision) and at fp32: a base with adapter slots plus the three
   adapter files, and the three merged exports.
3. Answers: greedy answers of each adapter on the shared base against its merged export (fp32: float rounding
   only, so they should be equal; at the serving precision the merged export quantizes W + BA while the shared base
   quantizes W and adds BA in float, so they may differ: the share that match is reported).
4. Memory: resident memory (VmRSS after a few requests, and its peak VmHWM) of one process serving the base with the
   three adapters, against one process per merged export (K servers of full exports) and against one of them.
5. Latency: the same requests at batch 1 on the shared base with one adapter throughout, alternating between
   adapters request by request (an adapter switch between batches), and on the merged export (no slots): ms per
   request and the cost of the slots' extra MatMuls.

Writes adapters.md and adapters.json into --out (default bench/results), and records the JSON's
"adapters": {"k", "rss_mb_shared", "rss_mb_copies", ...} in --out/serve.json beside bench/serve.py's figures
(bench/serve.py keeps that key when it rewrites the file); `--record-only` records a finished run's
adapters.json there without measuring again.

    PYTHONPATH=$PWD .venv/bin/python bench/adapters.py              # quiet cores; about 25 min on 2 cores
    PYTHONPATH=$PWD .venv/bin/python bench/adapters.py --tiny --allow-busy --out /tmp/x   # smoke, ~1 min
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import portable, require_quiet  # noqa: E402

NAMES = ("finance", "st_marys", "lakeside")
RUNS = Path(tempfile.gettempdir())  # replaced by main() with a folder inside its temporary work folder
PROMPTS_PER_ADAPTER = 24
NEW_TOKENS = 24
LATENCY_REQUESTS = 24


# ---- training ---------------------------------------------------------------------------------------------------
def _write(records: list[dict[str, Any]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


def _hospital_records(hospital: str, n: int, seed: int) -> list[dict[str, Any]]:
    from domains.medical.ingest import report_from_text
    from domains.medical.synthetic import generate
    from domains.medical.training import stage2_records

    synthetic = generate(n, hospital=hospital, seed=seed)
    reports = [report_from_text(s.text, report_id=s.report_id, hospital=s.hospital) for s in synthetic]
    return stage2_records([r for r in reports if r.trainable], hospital=hospital)


def _finance_records(n: int) -> list[dict[str, Any]]:
    from domains.finance.synthetic import generate
    from domains.finance.training import training_records

    frame = generate(max(4, n // 38 + 1), seed=11, days=60)
    return training_records(frame, frame["is_fraud"].to_numpy())[:n]


def _train(config_name: str, data: Path, name: str, base: str, steps: int, tiny: bool) -> Path:
    from core.finetune.config import load_config
    from core.finetune.run import run_training

    overrides = [
        f"model.base={base}",
        f"dataset.path={data}",
        f"output.name={name}",
        f"output.dir={RUNS}",
        f"train.max_steps={steps}",
        "train.epochs=100",
        "train.save_steps=100000",
        "dataset.eval_fraction=0.0",
        "dataset.max_length=256",
    ]
    if tiny:
        overrides += ["method.lora_layers=null", "train.batch_size=4"]
    return run_training(load_config(REPO / "configs" / config_name, overrides), show_progress=False)


def train_adapters(base: str, steps: int, work: Path, tiny: bool) -> dict[str, Path]:
    """The three runs; `lakeside`'s base is the merged stage-1 run (so its adapter is a chain of two)."""
    from core.finetune.load import merge_for_export
    from domains.medical.training import vocabulary_records

    n = 8 * steps
    data = work / "data"
    finance = _write(_finance_records(n), data / "finance.jsonl")
    st_marys = _write(_hospital_records("st_marys", n, 1), data / "st_marys.jsonl")
    lakeside = _write(_hospital_records("lakeside", n, 2), data / "lakeside.jsonl")
    vocabulary = _write(vocabulary_records(seed=0, per_source=n), data / "stage1.jsonl")
    runs = {
        "finance": _train("finance-lora.yaml", finance, "finance", base, steps, tiny),
        "st_marys": _train("medical-stage2.yaml", st_marys, "st_marys", base, steps, tiny),
    }
    stage1 = _train("medical-stage1.yaml", vocabulary, "stage1", base, steps, tiny)
    stage1_base = merge_for_export(stage1, work / "stage1-base")
    runs["lakeside"] = _train("medical-stage2.yaml", lakeside, "lakeside", str(stage1_base), steps, tiny)
    return runs


# ---- exports ----------------------------------------------------------------------------------------------------
def export_all(base: str, runs: dict[str, Path], precision: str, work: Path) -> dict[str, Any]:
    """Slot base, adapter files and merged exports at `precision`, with their sizes and build seconds."""
    from core.quantize.export import export_model, folder_size_mb
    from core.quantize.lora_slots import export_adapter, export_base_with_slots
    from core.quantize.precisions import ExportOptions

    out = work / precision
    started = time.perf_counter()
    slots = export_base_with_slots(model=base, sources=list(runs.values()), options=ExportOptions(precision),
                                   out_dir=out / "base")  # fmt: skip
    base_s = time.perf_counter() - started
    adapters, merged, seconds = {}, {}, {}
    for name, run in runs.items():
        t = time.perf_counter()
        adapters[name] = export_adapter(run_dir=run, base_export=slots.path, out_dir=out / f"adapter-{name}")
        seconds[f"adapter:{name}"] = time.perf_counter() - t
        t = time.perf_counter()
        merged[name] = export_model(options=ExportOptions(precision), out_dir=out / f"merged-{name}", run_dir=run).path
        seconds[f"merged:{name}"] = time.perf_counter() - t
    return {
        "base": slots.path,
        "adapters": {n: a.path for n, a in adapters.items()},
        "merged": merged,
        "ranks": {n: a.rank for n, a in adapters.items()},
        "size_mb": {
            "base": folder_size_mb(slots.path),
            **{f"adapter:{n}": a.size_mb for n, a in adapters.items()},
            **{f"merged:{n}": folder_size_mb(p) for n, p in merged.items()},
        },
        "seconds": {"base": base_s, **seconds},
    }


# ---- answers ----------------------------------------------------------------------------------------------------
def prompts_for(name: str, n: int) -> list[str]:
    """Chat prompts (JSON, without the answer) of the adapter's own task, from records it was not trained on."""
    if name == "finance":
        chats = [r["messages"][:-1] for r in _finance_records(2000)[-n:]]
    else:
        chats = [r["messages"][:-1] for r in _hospital_records(name, n + 10, seed=99)[:n]]
    return [json.dumps(c) for c in chats]


def _render(model: Any, chat: str) -> str:
    return model.chat_prompt(json.loads(chat))


def compare_answers(exports: dict[str, Any], prompts: dict[str, list[str]]) -> dict[str, Any]:
    """Greedy token ids of each adapter on the shared base against its merged export: share of equal answers."""
    from core.serving.state import ServingState

    models = {"base": exports["base"], **{f"merged-{n}": p for n, p in exports["merged"].items()}}
    state = ServingState.in_process(models, adapters={"base": exports["adapters"]}, max_batch_size=8)
    try:
        out = {}
        model = state.workers["base"].model
        for name, chats in prompts.items():
            texts = [_render(model, c) for c in chats]
            ask = {"max_tokens": NEW_TOKENS, "temperature": 0}
            shared = [r.token_ids for r in state.generate_many_blocking(name, texts, ask)]
            merged = [r.token_ids for r in state.generate_many_blocking(f"merged-{name}", texts, ask)]
            base = [r.token_ids for r in state.generate_many_blocking("base", texts, ask)]
            out[name] = {
                "prompts": len(texts),
                "equal": sum(a == b for a, b in zip(shared, merged, strict=True)),
                "differs_from_base": sum(a != b for a, b in zip(shared, base, strict=True)),
                "shared_ids": [list(map(int, a)) for a in shared],
                "merged_ids": [list(map(int, a)) for a in merged],
            }
        return out
    finally:
        state.close()


# ---- memory (each configuration in a fresh process) ---------------------------------------------------------------
def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def memory_child(spec_file: str, out_file: str) -> None:
    """Load the served models of `spec_file`, answer a few requests per name, write RSS figures (child process)."""
    from core.serving.state import ServingState

    spec = json.loads(Path(spec_file).read_text())
    after_imports = _status_mb("VmRSS")
    state = ServingState.in_process(
        {k: Path(v) for k, v in spec["models"].items()},
        adapters={b: {n: Path(p) for n, p in a.items()} for b, a in spec.get("adapters", {}).items()},
    )
    for name in spec["ask"]:
        state.generate_many_blocking(name, spec["prompts"], {"max_tokens": 8, "temperature": 0})
    result = {"after_imports_mb": after_imports, "rss_mb": _status_mb("VmRSS"), "peak_mb": _status_mb("VmHWM")}
    state.close()
    Path(out_file).write_text(json.dumps(result))


def _measure(spec: dict[str, Any], work: Path) -> dict[str, float]:
    spec_file, out_file = work / "mem-spec.json", work / "mem-out.json"
    spec_file.write_text(json.dumps(spec))
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--memory-child", str(spec_file), str(out_file)],
                   check=True, cwd=REPO)  # fmt: skip
    return json.loads(out_file.read_text())


def memory(exports: dict[str, Any], prompts: list[str], work: Path) -> dict[str, Any]:
    names = list(exports["adapters"])
    adapters = {n: str(p) for n, p in exports["adapters"].items()}
    spec = {"models": {"base": str(exports["base"])}, "adapters": {"base": adapters}, "ask": names, "prompts": prompts}
    shared = _measure(spec, work)
    slots_only = _measure({"models": {"base": str(exports["base"])}, "ask": ["base"], "prompts": prompts}, work)
    copies = [_measure({"models": {n: str(exports["merged"][n])}, "ask": [n], "prompts": prompts}, work) for n in names]
    return {"shared": shared, "slots_only": slots_only, "copies": copies}


# ---- latency ----------------------------------------------------------------------------------------------------
def latency(exports: dict[str, Any], prompt_text: str) -> dict[str, Any]:
    """ms per request at batch 1 (NEW_TOKENS forced): one adapter throughout, adapters alternating, merged export."""
    from core.serving.state import ServingState

    names = list(exports["adapters"])
    state = ServingState.in_process(
        {"base": exports["base"], "merged": exports["merged"][names[0]]},
        adapters={"base": exports["adapters"]},
        max_batch_size=1,
        prefix_cache="off",
    )
    ask = {"max_tokens": NEW_TOKENS, "min_tokens": NEW_TOKENS, "temperature": 0}

    def timed(models: list[str]) -> float:
        for m in models[:3]:
            state.generate_blocking(m, prompt_text, **ask)  # warm-up
        ms = []
        for m in models:
            t = time.perf_counter()
            state.generate_blocking(m, prompt_text, **ask)
            ms.append(1000 * (time.perf_counter() - t))
        return statistics.median(ms)

    try:
        rounds = LATENCY_REQUESTS
        return {
            "same_adapter_ms": timed([names[0]] * rounds),
            "alternating_ms": timed([names[i % len(names)] for i in range(rounds)]),
            "base_no_adapter_ms": timed(["base"] * rounds),
            "merged_export_ms": timed(["merged"] * rounds),
            "new_tokens": NEW_TOKENS,
        }
    finally:
        state.close()


# ---- report -----------------------------------------------------------------------------------------------------
def report(res: dict[str, Any], out: Path) -> None:
    a = res["adapters"]
    k = a["k"]
    lines = [
        "# Several adapters on one served base",
        "",
        f"Command: `{res['command']}`",
        "",
        f"Machine: {res['machine']}",
        "",
        f"Took {res['seconds']:.0f} s. Adapters trained {res['steps']} steps each on the {res['model']} model "
        f"(ranks: {', '.join(f'{n} {r}' for n, r in res['ranks'].items())}; lakeside is two-stage: stage 1 + stage 2 "
        "concatenated). Serving precision: " + res["precision"] + ".",
        "",
        "## Memory (one process per configuration, after a few requests per served name)",
        "",
        "| configuration | resident MB | peak MB |",
        "|---|---|---|",
        f"| one server: base + {k} adapters | {a['rss_mb_shared']:.0f} | {a['peak_mb_shared']:.0f} |",
        f"| one server: the base with slots, no adapter | {a['rss_mb_slots_only']:.0f} | "
        f"{a['peak_mb_slots_only']:.0f} |",
        f"| one server: one full export | {a['rss_mb_one_copy']:.0f} | {a['peak_mb_one_copy']:.0f} |",
        f"| {k} servers of full exports (sum) | {a['rss_mb_copies']:.0f} | {a['peak_mb_copies']:.0f} |",
        "",
        f"Shared base with {k} adapters: **{a['ratio_to_one_copy']:.2f}x** one full export's server "
        f"(goal <= 1.2x), {a['ratio_to_copies']:.2f}x the {k} servers. A process holds "
        f"{a['after_imports_mb']:.0f} MB before any model is loaded.",
        "",
        "## Sizes on disk (MB)",
        "",
        "| file | MB |",
        "|---|---|",
        *[f"| {n} | {v:.1f} |" for n, v in res["size_mb"].items()],
        "",
        "## Answers: adapter on the shared base vs its merged export (greedy, "
        f"{NEW_TOKENS} new tokens)",
        "",
        "| adapter | precision | prompts | equal answers | answers that differ from the base |",
        "|---|---|---|---|---|",
    ]
    for precision, rows in res["answers"].items():
        for name, row in rows.items():
            lines.append(f"| {name} | {precision} | {row['prompts']} | {row['equal']} | {row['differs_from_base']} |")
    if res.get("against_fp32"):
        lines += [
            "",
            f"At {res['precision']} the two differ in what is quantized: the merged export rounds W + BA, the shared "
            "base rounds W and adds BA in float. Which stays closer to the fp32 model (the merged fp32 export's "
            "greedy answers)?",
            "",
            f"| adapter | shared base {res['precision']} = fp32 | merged {res['precision']} = fp32 |",
            "|---|---|---|",
            *[
                f"| {n} | {r['shared']}/{r['prompts']} | {r['merged']}/{r['prompts']} |"
                for n, r in res["against_fp32"].items()
            ],
        ]
    lat = res["latency"]
    lines += [
        "",
        f"## Latency at batch 1 ({lat['new_tokens']} new tokens, median ms per request, {res['precision']})",
        "",
        "| requests | ms |",
        "|---|---|",
        f"| one adapter throughout | {lat['same_adapter_ms']:.0f} |",
        f"| adapters alternating (a switch before every batch) | {lat['alternating_ms']:.0f} |",
        f"| the base with no adapter active | {lat['base_no_adapter_ms']:.0f} |",
        f"| the merged export (no slots) | {lat['merged_export_ms']:.0f} |",
        "",
        f"Switching adapters costs {lat['alternating_ms'] - lat['same_adapter_ms']:+.0f} ms per request; the slots' "
        f"extra MatMuls cost {lat['same_adapter_ms'] / lat['merged_export_ms']:.2f}x the merged export's time.",
        "",
        "## Goals",
        "",
    ]
    equal_fp32 = all(r["equal"] == r["prompts"] for r in res["answers"].get("fp32", {}).values())
    lines += [
        f"- memory <= 1.2x one full export for K = {k}: {'met' if a['ratio_to_one_copy'] <= 1.2 else 'NOT met'} "
        f"({a['ratio_to_one_copy']:.2f}x)",
        f"- greedy answers equal to each adapter's merged export (fp32): {'met' if equal_fp32 else 'NOT met'}",
    ]
    (out / "adapters.md").write_text("\n".join(lines) + "\n")
    (out / "adapters.json").write_text(json.dumps(portable(res), indent=2) + "\n")
    _record_in_serve(res, out / "serve.json")


def _record_in_serve(res: dict[str, Any], path: Path) -> None:
    """Put the memory comparison under "adapters" in serve.json beside bench/serve.py's figures, naming the
    command and machine it came from; serve.json's other keys are left as bench/serve.py wrote them."""
    serve = json.loads(path.read_text()) if path.exists() else {}
    serve["adapters"] = {**portable(res["adapters"]), "command": res["command"], "machine": res["machine"],
                         "precision": res["precision"]}
    path.write_text(json.dumps(serve, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="base model: default, or a folder")
    parser.add_argument("--precision", default="int4", help="the serving precision (fp32, int8, int4)")
    parser.add_argument("--steps", type=int, default=20, help="training steps per adapter")
    parser.add_argument("--tiny", action="store_true", help="a tiny random model, few steps (smoke test)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--allow-busy", action="store_true")
    parser.add_argument(
        "--record-only",
        action="store_true",
        help="measure nothing: record --out/adapters.json's finished run under \"adapters\" in --out/serve.json",
    )
    parser.add_argument("--memory-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child)
        return
    if args.record_only:
        finished = args.out / "adapters.json"
        if not finished.is_file():
            parser.error(f"--record-only: {finished} does not exist (run bench/adapters.py without it first)")
        _record_in_serve(json.loads(finished.read_text()), args.out / "serve.json")
        print(f"recorded {args.out / 'adapters.json'} in {args.out / 'serve.json'}")
        return
    machine = require_quiet(allow_busy=args.allow_busy)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="finmed-bench-adapters-") as tmp:
        work = Path(tmp)
        model = args.model
        if args.tiny:
            from core.models.tiny import save_tiny_model

            model, args.steps = str(save_tiny_model(work / "tiny")), min(args.steps, 4)
        global RUNS
        RUNS = work / "runs"
        print(f"training {len(NAMES)} adapters ({args.steps} steps each)", flush=True)
        runs = train_adapters(model, args.steps, work, args.tiny)
        answers, exports = {}, {}
        for precision in dict.fromkeys(["fp32", args.precision]):
            print(f"exporting at {precision}", flush=True)
            exports[precision] = export_all(model, runs, precision, work)
        n = 4 if args.tiny else PROMPTS_PER_ADAPTER
        prompts = {name: prompts_for(name, n) for name in NAMES}
        for precision, ex in exports.items():
            print(f"answers at {precision}", flush=True)
            answers[precision] = compare_answers(ex, prompts)
        serving = exports[args.precision]
        from core.serving.engine import LoadedModel

        renderer = LoadedModel("render", serving["base"], prefix_slots=0)
        texts = [_render(renderer, c) for c in prompts["st_marys"][:4]]
        print("memory", flush=True)
        mem = memory(serving, texts, work)
        print("latency", flush=True)
        lat = latency(serving, texts[0])
        copies = mem["copies"]
        against_fp32 = {}
        if args.precision != "fp32":
            for name, row in answers[args.precision].items():
                reference = answers["fp32"][name]["merged_ids"]
                against_fp32[name] = {
                    "prompts": row["prompts"],
                    "shared": sum(a == b for a, b in zip(row["shared_ids"], reference, strict=True)),
                    "merged": sum(a == b for a, b in zip(row["merged_ids"], reference, strict=True)),
                }
        for rows in answers.values():
            for row in rows.values():
                del row["shared_ids"], row["merged_ids"]
        k = len(copies)
        res = {
            "command": "PYTHONPATH=$PWD .venv/bin/python bench/adapters.py " + " ".join(sys.argv[1:]),
            "machine": machine,
            "model": "tiny" if args.tiny else args.model,
            "precision": args.precision,
            "steps": args.steps,
            "ranks": serving["ranks"],
            "size_mb": {k_: round(v, 2) for k_, v in serving["size_mb"].items()},
            "export_seconds": {k_: round(v, 1) for k_, v in serving["seconds"].items()},
            "answers": answers,
            "against_fp32": against_fp32,
            "latency": lat,
            "adapters": {
                "k": k,
                "rss_mb_shared": mem["shared"]["rss_mb"],
                "peak_mb_shared": mem["shared"]["peak_mb"],
                "rss_mb_copies": sum(c["rss_mb"] for c in copies),
                "peak_mb_copies": sum(c["peak_mb"] for c in copies),
                "rss_mb_one_copy": statistics.mean(c["rss_mb"] for c in copies),
                "peak_mb_one_copy": statistics.mean(c["peak_mb"] for c in copies),
                "after_imports_mb": mem["shared"]["after_imports_mb"],
                "rss_mb_slots_only": mem["slots_only"]["rss_mb"],
                "peak_mb_slots_only": mem["slots_only"]["peak_mb"],
                "ratio_to_one_copy": mem["shared"]["rss_mb"] / statistics.mean(c["rss_mb"] for c in copies),
                "ratio_to_copies": mem["shared"]["rss_mb"] / sum(c["rss_mb"] for c in copies),
                "switch_ms": lat["alternating_ms"] - lat["same_adapter_ms"],
            },
        }
        res["seconds"] = time.perf_counter() - started
        args.out.mkdir(parents=True, exist_ok=True)
        report(res, args.out)
    print(f"wrote {args.out / 'adapters.md'}")


if __name__ == "__main__":
    main()
