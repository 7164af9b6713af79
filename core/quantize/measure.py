"""Serve one exported GenAI folder and measure it: task predictions, perplexity, time to first token, decode speed
at batch 1 and 8, and peak memory. Runs in a fresh child process so peak memory belongs to that model alone."""

from __future__ import annotations

import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DECODE_TOKENS = 32
TIMING_REPEATS = 3


@dataclass
class Workload:
    """Token ids prepared by the parent (so the serving process loads no transformers).

    Attributes:
        prompts: eval prompt ids, each (seq,), chat template applied with the generation prompt.
        ppl_texts: held-out text ids, each (seq,).
        speed_prompt: ids of the prompt used for timing.
        max_new_tokens: answer budget per eval prompt.
        eos_ids: token ids that end an answer.
    """

    prompts: list[list[int]]
    ppl_texts: list[list[int]]
    speed_prompt: list[int]
    max_new_tokens: int = 16
    eos_ids: list[int] = field(default_factory=list)
    decode_tokens: int = DECODE_TOKENS


def _generator(og: Any, model: Any, ids: np.ndarray, max_length: int, min_length: int = 0) -> Any:
    params = og.GeneratorParams(model)
    params.set_search_options(
        max_length=max_length, min_length=min_length, do_sample=False, batch_size=int(ids.shape[0])
    )
    gen = og.Generator(model, params)
    gen.append_tokens(ids.astype(np.int32))
    return gen


def _greedy_answers(og: Any, model: Any, work: Workload, prefix: list[int]) -> list[list[int]]:
    answers = []
    for prompt in work.prompts:
        ids = np.asarray([prefix + prompt])
        gen = _generator(og, model, ids, max_length=ids.shape[1] + work.max_new_tokens)
        new: list[int] = []
        while not gen.is_done() and len(new) < work.max_new_tokens:
            gen.generate_next_token()
            token = int(gen.get_next_tokens()[0])
            if token in work.eos_ids:
                break
            new.append(token)
        answers.append(new)
    return answers


def _perplexity(og: Any, model: Any, texts: list[list[int]], prefix: list[int]) -> float:
    """exp(mean next-token NLL) over all held-out tokens, from one prefill pass per text."""
    nll, count = 0.0, 0
    for text in texts:
        if len(text) < 2:
            continue
        ids = np.asarray([prefix + text])
        gen = _generator(og, model, ids, max_length=ids.shape[1] + 1)
        logits = np.asarray(gen.get_output("logits"), dtype=np.float64)[0, len(prefix) :]  # (seq, vocab)
        logits = logits[:-1]
        log_z = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
        targets = np.asarray(text[1:])
        nll += float((log_z - logits[np.arange(len(targets)), targets]).sum())
        count += len(targets)
    return math.exp(nll / count) if count else float("nan")


def _timed_decode(og: Any, model: Any, prompt: list[int], batch: int, tokens: int) -> tuple[float, float]:
    """(time to first token in s, decode tokens/s over `tokens` further steps) for `batch` copies of prompt."""
    ids = np.asarray([prompt] * batch)
    length = ids.shape[1] + 1 + tokens
    start = time.perf_counter()
    gen = _generator(og, model, ids, max_length=length, min_length=length)  # min_length: no early end
    gen.generate_next_token()
    first = time.perf_counter()
    for _ in range(tokens):
        gen.generate_next_token()
    end = time.perf_counter()
    return first - start, batch * tokens / (end - first)


def _peak_rss_kb() -> int:
    """This process's peak resident memory in KiB. VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec,
    so a child would report its parent's peak."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure_folder(model_dir: str, work: Workload) -> dict[str, Any]:
    """All serving measurements of one export folder (call in a fresh process for a meaningful peak memory).

    Returns:
        dict with answers (token ids per prompt), perplexity, ttft_ms, decode_tps_b1, decode_tps_b8, peak_mem_mb.
    """
    import onnxruntime_genai as og

    from core.quantize.prefix import read_prefix_ids

    prefix = read_prefix_ids(Path(model_dir))
    model = og.Model(model_dir)
    prompt = prefix + work.speed_prompt
    _timed_decode(og, model, prompt, 1, 4)  # warm-up
    b1 = [_timed_decode(og, model, prompt, 1, work.decode_tokens) for _ in range(TIMING_REPEATS)]
    b8 = [_timed_decode(og, model, prompt, 8, work.decode_tokens) for _ in range(TIMING_REPEATS)]
    answers = _greedy_answers(og, model, work, prefix)
    perplexity = _perplexity(og, model, work.ppl_texts, prefix)
    peak_kb = _peak_rss_kb()
    return {
        "answers": [[int(t) for t in a] for a in answers],
        "perplexity": perplexity,
        "ttft_ms": 1000 * statistics.median(t for t, _ in b1),
        "decode_tps_b1": statistics.median(s for _, s in b1),
        "decode_tps_b8": statistics.median(s for _, s in b8),
        "peak_mem_mb": peak_kb / 1024,
    }


def measure_in_child(model_dir: Path, work: Workload) -> dict[str, Any]:
    """measure_folder in a fresh Python process (its own peak RSS, no memory of earlier models).

    Raises:
        FinmedError: the serving process failed; its last error line is in the message.
    """
    from core.errors import FinmedError

    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
    with tempfile.TemporaryDirectory(prefix="finmed-measure-") as tmp:
        work_file, out_file = Path(tmp) / "work.json", Path(tmp) / "out.json"
        work_file.write_text(json.dumps(asdict(work)))
        proc = subprocess.run(
            [sys.executable, "-m", "core.quantize.measure", str(model_dir), str(work_file), str(out_file)],
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise FinmedError(f"serving {model_dir} for measurement failed: {tail}")
        return json.loads(out_file.read_text())


if __name__ == "__main__":
    _dir, _work, _out = sys.argv[1:4]
    _result = measure_folder(_dir, Workload(**json.loads(Path(_work).read_text())))
    Path(_out).write_text(json.dumps(_result))
