"""Load benchmark of the model server: batching off vs on vs plain transformers, at rising concurrency.

Starts `finmed serve` on loopback twice (max_batch_size 1, then dynamic batching) with the default model exported
to ONNX Runtime GenAI at int4, sends a fixed request mix (finance score 8 tokens, medical draft 60 tokens, chat
24 tokens; greedy, min_tokens = max_tokens so every configuration generates the same tokens) at each concurrency,
and runs the anchor a user would otherwise pick: transformers `generate` in fp32, one request at a time.
Prints QPS, p50/p95/p99 latency, tokens/s, mean batch size and CPU-seconds per 1,000 requests, with ratios, and
writes bench/results/serve.md and bench/results/serve.json.

    PYTHONPATH=$PWD .venv/bin/python bench/serve.py            # full run (~15 min on 2 busy cores)
    PYTHONPATH=$PWD .venv/bin/python bench/serve.py --quick    # levels 1,16 only
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.serving.build_onnx import build_genai_folder  # noqa: E402
from core.serving.client import AsyncServingClient  # noqa: E402

FINANCE = (
    "You are a fraud analyst. Transaction: 1250.00 USD at merchant M123 via card from DE at 02:14 local time; "
    "account A42 made 7 transactions in the last hour, previous interval 35 seconds, new location. "
    "Answer with 'Risk level: N; Basis: ...'."
)
DRAFT = (
    "Indication: cough and fever. Comparison: chest radiograph from last year. Findings: No focal "
    "consolidation, pleural effusion or pneumothorax. Heart size is normal. Write the impression."
)
CHAT = "Explain in one sentence what a pleural effusion is."
# (kind, prompt, new tokens); the mix cycles through this list
MIX = [("finance", FINANCE, 8), ("draft", DRAFT, 60), ("finance", FINANCE, 8), ("chat", CHAT, 24)]
MACHINE_NOTE = (
    "Machine: 2 CPU cores shared with other jobs (five other engineers' builds and tests ran at the same time), "
    "so absolute numbers are noisy and lower than on a quiet machine; ratios come from one run."
)


@dataclass
class Level:
    """Results at one concurrency."""

    concurrency: int
    requests: int
    seconds: float
    latencies: list[float]
    tokens: int
    cpu_seconds: float
    mean_batch: float | None
    draft_latencies: list[float] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        return {
            "c": self.concurrency,
            "n": self.requests,
            "qps": self.requests / self.seconds,
            "p50_ms": 1000 * _pct(lat, 50),
            "p95_ms": 1000 * _pct(lat, 95),
            "p99_ms": 1000 * _pct(lat, 99),
            "tok_s": self.tokens / self.seconds,
            "mean_batch": self.mean_batch,
            "cpu_s_per_1000": 1000 * self.cpu_seconds / self.requests,
        }


def _pct(values: list[float], q: float) -> float:
    """Percentile with linear interpolation (values sorted)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _requests(n: int) -> list[tuple[str, str, int]]:
    return [MIX[i % len(MIX)] for i in range(n)]


def _messages(prompt: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}]


# ---- ONNX Runtime GenAI server ----------------------------------------------------------------------------------
def _proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _batch_totals(metrics: str) -> tuple[float, float]:
    total = count = 0.0
    for line in metrics.splitlines():
        if line.startswith("finmed:batch_size_sum"):
            total += float(line.split()[-1])
        elif line.startswith("finmed:batch_size_count"):
            count += float(line.split()[-1])
    return total, count


class Server:
    """`finmed serve` in a subprocess with its own data folder, database and API key."""

    def __init__(self, onnx_dir: Path, work: Path, *, max_batch_size: int, max_wait_ms: float) -> None:
        self.work = work
        self.env = os.environ | {"FINMED_DATA_DIR": str(work / "var"), "PYTHONPATH": str(REPO)}
        config = work / "serve.yaml"
        config.write_text(
            "models:\n"
            f"  - name: bench\n    path: {onnx_dir}\n    max_batch_size: {max_batch_size}\n"
            f"    max_wait_ms: {max_wait_ms}\n    max_queue: 4096\n    timeout_s: 600\n"
        )
        self._cli("db", "upgrade")
        self.key = self._cli("serve", "keys", "add", "bench").strip().splitlines()[-1]
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(work / "server.log", "w")  # noqa: SIM115
        cmd = [sys.executable, "-c", "from core.cli import main; main()", "serve", "--config", str(config)]
        self.proc = subprocess.Popen([*cmd, "--port", str(self.port)], env=self.env, stdout=self.log, stderr=self.log)

    def _cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", "from core.cli import main; main()", *args],
            env=self.env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        return done.stdout

    async def wait_ready(self) -> None:
        async with AsyncServingClient(self.url, self.key) as client:
            for _ in range(1200):
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited; see {self.work / 'server.log'}")
                try:
                    if (await client._http.get("/readyz")).status_code == 200:
                        return
                except Exception:  # noqa: BLE001  (not listening yet)
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("server not ready after 120 s")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


async def _drive(client: AsyncServingClient, reqs: list[tuple[str, str, int]], concurrency: int) -> tuple:
    """Send `reqs` with `concurrency` requests in flight; (wall seconds, latencies, draft latencies, tokens)."""
    queue = list(enumerate(reqs))
    latencies: list[float] = [0.0] * len(reqs)
    tokens = [0] * len(reqs)

    async def worker() -> None:
        while queue:
            i, (_, prompt, new) = queue.pop(0)
            started = time.perf_counter()
            done = await client.chat("bench", _messages(prompt), max_tokens=new, min_tokens=new, temperature=0)
            latencies[i] = time.perf_counter() - started
            tokens[i] = done.completion_tokens

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    drafts = [lat for lat, r in zip(latencies, reqs, strict=True) if r[0] == "draft"]
    return seconds, latencies, drafts, sum(tokens)


async def bench_server(server: Server, levels: list[int], n_for: dict[int, int], drafts_c1: int) -> dict[str, Any]:
    await server.wait_ready()
    results: dict[str, Any] = {"levels": []}
    async with AsyncServingClient(server.url, server.key, retries=0, timeout_s=600) as client:
        await _drive(client, _requests(4), 2)  # warm-up
        total_cpu = total_n = 0.0
        for c in levels:
            reqs = _requests(n_for[c])
            cpu0, (b0, k0) = _proc_cpu_seconds(server.proc.pid), _batch_totals(await _metrics(client))
            seconds, lat, _, toks = await _drive(client, reqs, c)
            cpu1, (b1, k1) = _proc_cpu_seconds(server.proc.pid), _batch_totals(await _metrics(client))
            level = Level(c, len(reqs), seconds, lat, toks, cpu1 - cpu0, (b1 - b0) / max(1.0, k1 - k0))
            results["levels"].append(level.row())
            total_cpu, total_n = total_cpu + level.cpu_seconds, total_n + len(reqs)
            print(f"  c={c:<3} {_fmt_row(level.row())}", flush=True)
        _, _, drafts, _ = await _drive(client, [MIX[1]] * drafts_c1, 1)
    results["draft_p95_ms_c1"] = 1000 * _pct(sorted(drafts), 95)
    results["cpu_s_per_1000"] = 1000 * total_cpu / total_n
    return results


async def _metrics(client: AsyncServingClient) -> str:
    return (await client._http.get("/metrics")).text


# ---- transformers anchor -----------------------------------------------------------------------------------------
def bench_transformers(model_dir: Path, levels: list[int], n_for: dict[int, int], drafts_c1: int) -> dict[str, Any]:
    """transformers generate, fp32, one request at a time behind a single worker (what a user would write)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(2)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    lock = threading.Lock()

    def one(prompt: str, new: int) -> float:
        started = time.perf_counter()
        with lock, torch.inference_mode():
            ids = tok.apply_chat_template(_messages(prompt), add_generation_prompt=True, return_tensors="pt",
                                          return_dict=True)  # fmt: skip
            model.generate(
                **ids, max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=tok.eos_token_id
            )
        return time.perf_counter() - started

    def drive(reqs: list[tuple[str, str, int]], c: int) -> tuple[float, list[float]]:
        started = time.perf_counter()
        with ThreadPoolExecutor(c) as pool:
            lat = list(pool.map(lambda r: one(r[1], r[2]), reqs))
        return time.perf_counter() - started, lat

    drive(_requests(2), 1)  # warm-up
    results: dict[str, Any] = {"levels": []}
    total_cpu = total_n = 0.0
    for c in levels:
        reqs = _requests(n_for[c])
        cpu0 = time.process_time()
        seconds, lat = drive(reqs, c)
        cpu = time.process_time() - cpu0
        level = Level(c, len(reqs), seconds, lat, sum(r[2] for r in reqs), cpu, 1.0)
        results["levels"].append(level.row())
        total_cpu, total_n = total_cpu + cpu, total_n + len(reqs)
        print(f"  c={c:<3} {_fmt_row(level.row())}", flush=True)
    _, drafts = drive([MIX[1]] * drafts_c1, 1)
    results["draft_p95_ms_c1"] = 1000 * _pct(sorted(drafts), 95)
    results["cpu_s_per_1000"] = 1000 * total_cpu / total_n
    return results


# ---- report ------------------------------------------------------------------------------------------------------
def _fmt_row(r: dict[str, Any]) -> str:
    mb = f"{r['mean_batch']:.1f}" if r["mean_batch"] is not None else "-"
    return (
        f"n={r['n']:<3} qps={r['qps']:6.2f} p50={r['p50_ms']:7.0f} p95={r['p95_ms']:7.0f} p99={r['p99_ms']:7.0f} ms "
        f"tok/s={r['tok_s']:6.1f} batch={mb} cpu-s/1000={r['cpu_s_per_1000']:7.0f}"
    )


def _at(results: dict[str, Any], c: int, key: str) -> float:
    return next(r[key] for r in results["levels"] if r["c"] == c)


def _has(results: dict[str, Any], c: int) -> bool:
    return any(r["c"] == c for r in results["levels"])


def report(all_results: dict[str, dict[str, Any]], model: str, levels: list[int], command: str) -> tuple[str, dict]:
    names = list(all_results)
    lines = [
        "# Serving benchmark (bench/serve.py)",
        "",
        f"Command: `{command}`",
        "",
        f"Model: {model}. Request mix per concurrency level (cycled): finance score (8 new tokens), medical draft "
        "(60), finance score (8), chat (24); chat template, greedy, min_tokens = max_tokens so every configuration "
        "generates the same tokens. Latency is client-side (HTTP included for the two ONNX configurations). "
        "CPU-seconds: the server process's user+system time (ONNX) or the benchmark process's (transformers).",
        "",
        MACHINE_NOTE,
        "",
        "| config | c | n | QPS | p50 ms | p95 ms | p99 ms | tokens/s | mean batch | CPU-s / 1000 req |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in names:
        for r in all_results[name]["levels"]:
            mb = f"{r['mean_batch']:.2f}" if r["mean_batch"] is not None else "-"
            lines.append(
                f"| {name} | {r['c']} | {r['n']} | {r['qps']:.2f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | "
                f"{r['p99_ms']:.0f} | {r['tok_s']:.1f} | {mb} | {r['cpu_s_per_1000']:.0f} |"
            )
    lines += ["", "Ratios (same run):", "", "| c | QPS batching / no batching | p95 batching / no batching | "
              "QPS batching / transformers fp32 |", "| --- | --- | --- | --- |"]  # fmt: skip
    b, nb, tf = all_results.get("batching"), all_results.get("no_batching"), all_results.get("transformers_fp32")
    for c in levels:
        q = _at(b, c, "qps") / _at(nb, c, "qps") if b and nb else float("nan")
        p = _at(b, c, "p95_ms") / _at(nb, c, "p95_ms") if b and nb else float("nan")
        has_tf = tf is not None and any(r["c"] == c for r in tf["levels"])
        t = f"{_at(b, c, 'qps') / _at(tf, c, 'qps'):.2f}x" if b and has_tf else "not run"
        lines.append(f"| {c} | {q:.2f}x | {p:.2f}x | {t} |")
    lines += [
        "",
        "| config | CPU-s per 1000 requests (all levels) | medical draft p95 at c1 (ms) |",
        "| --- | --- | --- |",
    ]
    for name in names:
        lines.append(
            f"| {name} | {all_results[name]['cpu_s_per_1000']:.0f} | {all_results[name]['draft_p95_ms_c1']:.0f} |"
        )
    summary = {
        "model": model,
        "configs": {
            name: {
                "qps_c16": _at(res, 16, "qps") if _has(res, 16) else None,
                "p95_ms_c16": _at(res, 16, "p95_ms") if _has(res, 16) else None,
                "p95_ms_c1": _at(res, 1, "p95_ms") if _has(res, 1) else None,
                "draft_p95_ms_c1": res["draft_p95_ms_c1"],
                "cpu_s_per_1000": res["cpu_s_per_1000"],
            }
            for name, res in all_results.items()
        },
    }
    if b and nb and 16 in levels:
        q16, p16 = _at(b, 16, "qps") / _at(nb, 16, "qps"), _at(b, 16, "p95_ms") / _at(nb, 16, "p95_ms")
        draft = b["draft_p95_ms_c1"]
        lines += [
            "",
            "Goals:",
            f"- batching >= 2x QPS of no batching at c16: {q16:.2f}x -> {'met' if q16 >= 2 else 'MISSED'}",
            f"- p95 at c16 no worse than 2x: {p16:.2f}x -> {'met' if p16 <= 2 else 'MISSED'}",
            f"- medical draft p95 < 800 ms at c1 (batching server): {draft:.0f} ms -> "
            f"{'met' if draft < 800 else 'MISSED'}",
        ]
        if tf:
            ratio = tf["cpu_s_per_1000"] / b["cpu_s_per_1000"]
            lines.append(f"- cost: transformers fp32 / batching int4 CPU-seconds per 1000 requests = {ratio:.1f}x "
                         "(the seed document claims 15x for PEFT + quantized deployment)")  # fmt: skip
    return "\n".join(lines) + "\n", summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=REPO / "var" / "models" / "smollm2-135m-instruct")
    parser.add_argument("--precision", default="int4")
    parser.add_argument("--work-dir", type=Path, default=REPO / "bench" / ".work")
    parser.add_argument("--levels", default="1,4,8,16,32")
    parser.add_argument("--quick", action="store_true", help="levels 1,16 only, fewer requests")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=10)
    parser.add_argument("--skip-transformers", action="store_true")
    parser.add_argument(
        "--anchor-levels", default="1,16", help="levels for the transformers anchor (one at a time: slow, bounded)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    levels = [1, 16] if args.quick else [int(x) for x in args.levels.split(",")]
    n_for = {c: max(8, c) if not args.quick else max(4, c) for c in levels}
    drafts_c1 = 5 if args.quick else 10
    command = "PYTHONPATH=$PWD .venv/bin/python " + " ".join(["bench/serve.py", *sys.argv[1:]])

    args.work_dir.mkdir(parents=True, exist_ok=True)
    (args.work_dir / ".gitignore").write_text("*\n")
    onnx_dir = args.work_dir / f"{args.model_dir.name}-{args.precision}-genai"
    if not (onnx_dir / "genai_config.json").is_file():
        print(f"exporting {args.model_dir} to {onnx_dir} ({args.precision}) ...", flush=True)
        build_genai_folder(args.model_dir, onnx_dir, precision=args.precision)

    results: dict[str, dict[str, Any]] = {}
    for name, mbs in (("no_batching", 1), ("batching", args.max_batch_size)):
        print(f"{name} (max_batch_size {mbs}):", flush=True)
        with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
            server = Server(onnx_dir, Path(tmp), max_batch_size=mbs, max_wait_ms=args.max_wait_ms)
            try:
                results[name] = asyncio.run(bench_server(server, levels, n_for, drafts_c1))
            finally:
                server.stop()
    if not args.skip_transformers:
        print("transformers_fp32 (one request at a time):", flush=True)
        anchor = [c for c in levels if c in {int(x) for x in args.anchor_levels.split(",")}]
        results = {"transformers_fp32": bench_transformers(args.model_dir, anchor, n_for, drafts_c1)} | results

    text, summary = report(results, f"{args.model_dir.name} ({args.precision}, ONNX Runtime GenAI)", levels, command)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve.md").write_text(text)
    (args.out / "serve.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
