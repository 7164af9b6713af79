"""Serve one exported GenAI folder and measure it: task predictions, perplexity, time to first token, decode speed
at batch 1 and 8, and peak memory. Runs in a fresh child process so peak memory belongs to that model alone.

Every measurement goes through the serving engine (core.serving.engine.LoadedModel), the code path the server runs.
"""

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

from core.serving.engine import LoadedModel
from core.serving.gen_request import GenRequest

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


def _greedy_answers(model: LoadedModel, work: Workload, prefix: list[int]) -> list[list[int]]:
    """Greedy answer token ids per eval prompt, through the serving engine (one request at a time)."""
    answers = []
    for prompt in work.prompts:
        req = GenRequest(prompt_ids=np.asarray(prefix + prompt, dtype=np.int32), max_new_tokens=work.max_new_tokens)
        model.generate([req])
        answers.append(list(req.token_ids))
    return answers


def _perplexity(model: LoadedModel, texts: list[list[int]], prefix: list[int]) -> float:
    """exp(mean next-token NLL) over all held-out tokens, from one prefill pass per text."""
    nll, count = 0.0, 0
    for text in texts:
        if len(text) < 2:
            continue
        logits = model.prompt_logits(np.asarray(prefix + text, dtype=np.int32)).astype(np.float64)[len(prefix) :]
        logits = logits[:-1]  # (seq - 1, vocab): predictions of tokens 1..seq-1
        log_z = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
        targets = np.asarray(text[1:])
        nll += float((log_z - logits[np.arange(len(targets)), targets]).sum())
        count += len(targets)
    return math.exp(nll / count) if count else float("nan")


def _timed_decode(model: LoadedModel, prompt: list[int], batch: int, tokens: int) -> tuple[float, float]:
    """(time to first token in s, decode tokens/s over `tokens` further steps) for `batch` copies of prompt."""
    new = tokens + 1
    reqs = [
        GenRequest(prompt_ids=np.asarray(prompt, dtype=np.int32), max_new_tokens=new, min_new_tokens=new)
        for _ in range(batch)
    ]  # min_new_tokens: no early end
    start = time.perf_counter()
    model.generate(reqs)
    first, last = reqs[0].first_token_at, reqs[0].token_times[-1]
    assert first is not None
    return first - start, batch * tokens / (last - first)


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
    from core.quantize.prefix import read_prefix_ids

    prefix = read_prefix_ids(Path(model_dir))
    model = LoadedModel(Path(model_dir).name, Path(model_dir), device="cpu", prefix_slots=0)
    prompt = prefix + work.speed_prompt
    _timed_decode(model, prompt, 1, 4)  # warm-up
    b1 = [_timed_decode(model, prompt, 1, work.decode_tokens) for _ in range(TIMING_REPEATS)]
    b8 = [_timed_decode(model, prompt, 8, work.decode_tokens) for _ in range(TIMING_REPEATS)]
    answers = _greedy_answers(model, work, prefix)
    perplexity = _perplexity(model, work.ppl_texts, prefix)
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
