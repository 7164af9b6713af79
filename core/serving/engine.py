"""The one generation path of finmed: load an ONNX Runtime GenAI folder, generate (batched or with a cached prefix),
stream, and score prompts. Every model output — the HTTP server, finance adjudication, medical drafts, quant-report
measurements, benchmarks — runs through `LoadedModel` here; `_decode` is the only decode loop in the code base.

Two ways to run requests, both on onnxruntime-genai's `Generator`:
- `generate(batch)`: one static batch, rows right-padded with the pad id (the runtime turns it into the attention
  mask, so a greedy row gives the same tokens alone or in a batch).
- `generate_cached(req)`: one request whose leading tokens are a shared prefix (the system turn of a finance or
  medical prompt). The prefix is appended once to a batch-1 generator kept in a small LRU (`PrefixSlot`); each
  request rewinds that generator to the end of the prefix (`Generator.rewind_to`, which rolls the guidance state
  back too) and appends only its own tail, so the prefix's attention cache is computed once, not per request.

Why not og.Engine (0.18)? Its CPU scheduler is static batches of at most 4 (`get_capabilities()`), its prefix cache
needs paged attention (CUDA only), `TurnUsage.cached_prompt_tokens` stays 0 on CPU, and multi-turn reuse of a
Request (`begin_turn` after `rewind_to_start_of_turn`) refuses to run with more than one resident request ("Static
Engine Request rewind requires exactly one resident Request"): a cached prefix would cap the server at batch 1, as
the Generator does, with less control over logits (logprobs, level distributions). The batcher
(core/serving/batcher.py) decides which requests share a batch and when a request takes the cached-prefix path.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConflictError, FinmedError, NotFoundError, ValidationError
from core.quantize.prefix import read_prefix_ids
from core.serving.adapter_files import ADAPTER_FILE, EXPORT_META, adapter_tensors, check_fits, read_adapter, read_slots
from core.serving.gen_request import GenRequest

MIN_PREFIX_TOKENS = 8  # shorter shared prefixes are not worth a slot


def import_genai() -> Any:
    """onnxruntime_genai, imported after onnxruntime (whose shared library it needs loaded first)."""
    import onnxruntime  # noqa: F401
    import onnxruntime_genai as og

    return og


class _Row:
    """Per-row decoding state: incremental text, held-back tail for stop strings, finish detection."""

    def __init__(self, req: GenRequest, tokenizer: Any, eos_ids: set[int]) -> None:
        self.req = req
        self.stream = tokenizer.create_stream()
        self.eos_ids = eos_ids
        self.emitted = 0  # characters of req.text already handed to on_text
        self.hold = max((len(s) for s in req.stop), default=1) - 1

    @property
    def live(self) -> bool:
        return self.req.finish_reason is None and not self.req.cancelled.is_set()

    def observe(self, logits: np.ndarray, step: int) -> None:
        """Record log-probabilities from this row's next-token logits, shape (vocab,), before the token is chosen."""
        req = self.req
        logz = float(np.logaddexp.reduce(logits.astype(np.float64)))
        if step == 0 and req.score_token_ids:
            req.first_scores = logits[list(req.score_token_ids)].astype(np.float64) - logz
        if req.logprobs:
            self._pending = logits.astype(np.float64) - logz  # (vocab,) log-softmax

    def push(self, token: int, now: float) -> None:
        req = self.req
        if req.first_token_at is None:
            req.first_token_at = now
        req.token_times.append(now)
        if token in self.eos_ids:
            req.finish_reason = "stop"
            self.finish()
            return
        req.token_ids.append(token)
        if req.logprobs:
            logp = self._pending
            req.token_logprobs.append(float(logp[token]))
            if req.top_logprobs:
                best = np.argpartition(-logp, req.top_logprobs)[: req.top_logprobs]
                req.top.append({int(t): float(logp[t]) for t in best[np.argsort(-logp[best])]})
        req.text += self.stream.decode(token)
        for stop in req.stop:
            cut = req.text.find(stop)
            if cut >= 0:
                req.text = req.text[:cut]
                req.finish_reason = "stop"
                self.finish()
                return
        if len(req.token_ids) >= req.max_new_tokens:
            req.finish_reason = "length"
            self.finish()
            return
        self._flush(final=False)

    def finish(self, reason: str | None = None) -> None:
        if reason is not None and self.req.finish_reason is None:
            self.req.finish_reason = reason
        self._flush(final=True)

    def _flush(self, final: bool) -> None:
        upto = len(self.req.text) if final else max(self.emitted, len(self.req.text) - self.hold)
        if upto > self.emitted and self.req.on_text is not None:
            self.req.on_text(self.req.text[self.emitted : upto])
        self.emitted = upto
        if final and self.req.on_finish is not None:
            self.req.on_finish()  # answer this row now, while longer rows of the batch keep generating


@dataclass(eq=False)
class PrefixSlot:
    """A batch-1 generator holding one shared prefix's attention cache, for requests with the same search options."""

    prefix: tuple[int, ...]
    generator: Any
    max_length: int
    adapter: str | None = None
    uses: int = 0


@dataclass(frozen=True)
class AdapterInfo:
    """A LoRA adapter loaded on a base: where it came from, its rank, the memory its load added, when."""

    name: str
    folder: Path
    rank: int
    memory_bytes: int
    loaded_at: float


class LoadedModel:
    """One ONNX Runtime GenAI model folder loaded under a version name.

    Args:
        name: version name.
        folder: the exported folder (genai_config.json inside).
        device: auto, cpu or cuda.
        prefix_slots: cached prefixes kept (least recently used dropped first); 0 switches prefix reuse off.
        max_slot_tokens: the longest sequence a prefix slot holds (its attention cache is allocated to this size).
        session_options: ONNX Runtime session options laid over the folder's genai_config (intra_op_num_threads,
            "session.intra_op.allow_spinning": "0", ...).
    """

    def __init__(
        self,
        name: str,
        folder: Path,
        *,
        device: str = "auto",
        prefix_slots: int = 4,
        max_slot_tokens: int = 0,
        session_options: dict[str, Any] | None = None,
    ) -> None:
        og = import_genai()
        self.name = name
        self.folder = Path(folder)
        rss_before = _rss_bytes()
        started = time.perf_counter()
        config = og.Config(str(self.folder))
        if session_options:
            config.overlay(json.dumps({"model": {"decoder": {"session_options": session_options}}}))
        if device == "cuda" or (device == "auto" and og.is_cuda_available()):
            config.clear_providers()
            config.append_provider("cuda")
            self.device = "cuda"
        else:
            self.device = "cpu"
        try:
            self.model = og.Model(config)
        except Exception as exc:  # the runtime raises plain RuntimeError with its own text
            raise FinmedError(f"model {name!r}: cannot load {self.folder}: {str(exc).splitlines()[0]}") from None
        self.tokenizer = og.Tokenizer(self.model)
        self.load_seconds = time.perf_counter() - started
        self.loaded_at = time.time()
        self.memory_bytes = max(0, _rss_bytes() - rss_before)
        genai = json.loads((self.folder / "genai_config.json").read_text(encoding="utf-8"))
        self.context_length = int(genai["model"]["context_length"])
        eos = genai["model"]["eos_token_id"]
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])
        self.pad_id = int(genai["model"].get("pad_token_id", 0))
        self.vocab_size = int(genai["model"].get("vocab_size", 0))
        self.prefix_slots = prefix_slots
        self.max_slot_tokens = min(self.context_length, max_slot_tokens or self.context_length)
        self._slots: OrderedDict[tuple[Any, ...], PrefixSlot] = OrderedDict()
        self._og = og
        # A soft prompt exported exactly (core/quantize/prefix.py): its virtual-token ids go in front of every prompt.
        self.prefix_ids = np.asarray(read_prefix_ids(self.folder), dtype=np.int32)
        # LoRA adapters on this base (a base exported with slots, core/quantize/lora_slots.py), bound per request.
        has_slots = "adapter_slots" in _export_meta(self.folder)
        self.slots, self.fingerprint = read_slots(self.folder) if has_slots else ({}, "")
        self.adapters: dict[str, AdapterInfo] = {}
        self._og_adapters: Any = None
        self._lock = threading.RLock()  # generation, adapter loading and unloading take turns

    # ---- adapters -------------------------------------------------------------------------------------------------
    def load_adapter(self, name: str, folder: Path) -> AdapterInfo:
        """Load an adapter export (`finmed export --as-adapter`) under `name`, after checking it fits this base.

        Raises:
            ValidationError: this base has no adapter slots, the adapter was exported for another base model, or a
                tensor does not fit its slot (the message names it).
            ConflictError: `name` is already loaded.
            NotFoundError: no adapter export in `folder`.
        """
        meta = read_adapter(Path(folder))
        if not self.slots:
            raise ValidationError(
                f"model {self.name!r} has no adapter slots: serve a base exported with `finmed export --adapter-slots`"
            )
        if meta.get("fingerprint") != self.fingerprint:
            raise ValidationError(
                f"adapter {name!r} ({folder}) was exported for base model {meta.get('base_model')!r}, not the model "
                f"{self.name!r} was exported from"
            )
        file = Path(folder) / ADAPTER_FILE
        rank = check_fits(self.slots, adapter_tensors(file), adapter=name, base=self.name)
        with self._lock:
            if name in self.adapters:
                raise ConflictError(f"adapter {name!r} is already loaded on {self.name!r}; unload it first")
            if self._og_adapters is None:
                self._og_adapters = self._og.Adapters(self.model)
            rss_before = _rss_bytes()
            try:
                self._og_adapters.load(str(file), name)
            except Exception as exc:  # noqa: BLE001  (the runtime raises plain RuntimeErrors with its own text)
                raise ValidationError(f"adapter {name!r}: the runtime cannot load {file}: {_first_line(exc)}") from None
            info = AdapterInfo(name, Path(folder), rank, max(0, _rss_bytes() - rss_before), time.time())
            self.adapters[name] = info
        return info

    def unload_adapter(self, name: str) -> None:
        """Unload adapter `name` after the batch running now (its cached prefixes are dropped first).

        Raises:
            NotFoundError: no adapter of that name is loaded.
        """
        with self._lock:
            if name not in self.adapters:
                raise NotFoundError(f"adapter {name!r} is not loaded on {self.name!r}")
            for key in [k for k, slot in self._slots.items() if slot.adapter == name]:
                del self._slots[key]  # a generator holding the adapter keeps the runtime from unloading it
            self._og_adapters.unload(name)
            del self.adapters[name]

    def _activate(self, generator: Any, adapter: str | None) -> None:
        if adapter is None:
            return
        if adapter not in self.adapters:
            raise NotFoundError(f"adapter {adapter!r} is not loaded on {self.name!r} (it was unloaded)")
        generator.set_active_adapter(self._og_adapters, adapter)

    # ---- text -----------------------------------------------------------------------------------------------------
    def encode(self, text: str) -> np.ndarray:
        """(prompt_len,) int32 token ids for `text`."""
        return np.asarray(self.tokenizer.encode(text), dtype=np.int32)

    def encode_prompt(self, text: str) -> np.ndarray:
        """(prompt_len,) int32 token ids of a prompt as it is run: a soft prompt's virtual tokens, then `text`."""
        return np.concatenate([self.prefix_ids, self.encode(text)]) if len(self.prefix_ids) else self.encode(text)

    def decode(self, ids: list[int]) -> str:
        """Text of token ids."""
        return str(self.tokenizer.decode(np.asarray(ids, dtype=np.int32)))

    def chat_prompt(self, messages: list[dict[str, str]], *, add_generation_prompt: bool = True) -> str:
        """Render chat messages with the folder's chat template (ending with the assistant's turn by default)."""
        return self.tokenizer.apply_chat_template(json.dumps(messages), add_generation_prompt=add_generation_prompt)

    def shared_prefix_len(self, ids: np.ndarray, prefix_text: str) -> int:
        """How many leading tokens of `ids` (from `encode_prompt`) are the tokens of `prefix_text` as a prompt
        (0 when fewer than MIN_PREFIX_TOKENS)."""
        head = self.encode_prompt(prefix_text)
        n = min(len(head), len(ids) - 1)  # leave the request at least one token of its own
        same = np.flatnonzero(head[:n] != ids[:n])
        n = int(same[0]) if len(same) else n
        return n if n >= MIN_PREFIX_TOKENS else 0

    # ---- generation -----------------------------------------------------------------------------------------------
    def _params(self, first: GenRequest, *, batch_size: int, max_length: int, min_length: int = 0) -> Any:
        params = self._og.GeneratorParams(self.model)
        options: dict[str, Any] = dict(max_length=max_length, batch_size=batch_size, do_sample=first.do_sample)
        if min_length:
            options["min_length"] = min_length
        if first.do_sample:
            options.update(temperature=first.temperature, top_p=first.top_p, top_k=first.top_k)
            if first.seed is not None:
                options["random_seed"] = first.seed
        params.set_search_options(**options)
        if first.constraint is not None:
            params.set_guidance(*first.constraint.guidance())
        return params

    def _generator(self, params: Any) -> Any:
        """A Generator for `params`; a grammar the runtime rejects becomes a ValidationError naming the cause."""
        try:
            return self._og.Generator(self.model, params)
        except RuntimeError as exc:
            raise ValidationError(
                f"model {self.name!r} cannot decode under this constraint: {_first_line(exc)}"
            ) from None

    def _check_length(self, prompt_len: int, new: int) -> None:
        if prompt_len + new > self.context_length:
            raise ValidationError(
                f"prompt ({prompt_len} tokens) plus max_tokens exceeds model {self.name!r}'s context of "
                f"{self.context_length} tokens; shorten the prompt or lower max_tokens"
            )

    def generate(self, batch: list[GenRequest]) -> None:
        """Run `batch` as one static batch to completion (or until every row is finished or cancelled).

        All requests must share `batch_key()`. Rows are right-padded to the longest prompt. Constrained rows never
        share a static batch: they run one after another (the note above GenRequest says why).

        Raises:
            ValidationError: when prompt plus max_new_tokens exceeds the model's context length.
        """
        first = batch[0]
        if first.constraint is not None and len(batch) > 1:
            for req in batch:
                if not req.cancelled.is_set():
                    self.generate([req])
            return
        longest = max(len(r.prompt_ids) for r in batch)
        max_length = longest + max(r.max_new_tokens for r in batch)
        self._check_length(longest, max_length - longest)
        ids = np.full((len(batch), longest), self.pad_id, dtype=np.int32)  # (batch, longest), right-padded
        for i, req in enumerate(batch):
            ids[i, : len(req.prompt_ids)] = req.prompt_ids
        min_length = longest + max(r.min_new_tokens for r in batch) if first.min_new_tokens > 0 else 0
        params = self._params(first, batch_size=len(batch), max_length=max_length, min_length=min_length)
        with self._lock:
            generator = self._generator(params)
            self._activate(generator, first.adapter)
            self._start(batch)
            generator.append_tokens(ids)
            self._decode(generator, batch)
            del generator  # releases the adapter before an unload waiting for the lock

    def can_cache(self, req: GenRequest) -> bool:
        """True when `req` may run on a cached prefix (prefix reuse on, a prefix given, the slot big enough)."""
        return (
            self.prefix_slots > 0
            and req.prefix_len >= MIN_PREFIX_TOKENS
            and req.min_new_tokens == 0
            and len(req.prompt_ids) + req.max_new_tokens <= self.max_slot_tokens
        )

    def generate_cached(self, req: GenRequest) -> None:
        """Run one request on the slot holding its prefix (built on first use): only the tail is prefilled.

        Greedy answers equal those of `generate([req])` (tests/unit/core/serving asserts it).
        """
        self._check_length(len(req.prompt_ids), req.max_new_tokens)
        with self._lock:
            slot = self._slot(req)
            n = len(slot.prefix)
            slot.generator.rewind_to(n)
            slot.uses += 1
            req.cached_tokens = n if slot.uses > 1 else 0
            self._start([req])
            slot.generator.append_tokens(req.prompt_ids[None, n:])  # (1, tail)
            self._decode(slot.generator, [req])

    def _slot(self, req: GenRequest) -> PrefixSlot:
        prefix = tuple(int(t) for t in req.prompt_ids[: req.prefix_len])
        key = (prefix, req.adapter, req.do_sample, req.temperature, req.top_p, req.top_k, req.seed, req.constraint)
        slot = self._slots.get(key)
        if slot is not None:
            self._slots.move_to_end(key)
            return slot
        params = self._params(req, batch_size=1, max_length=self.max_slot_tokens)
        generator = self._generator(params)
        self._activate(generator, req.adapter)
        generator.append_tokens(np.asarray([prefix], dtype=np.int32))  # computed once for every later request
        slot = PrefixSlot(prefix=prefix, generator=generator, max_length=self.max_slot_tokens, adapter=req.adapter)
        self._slots[key] = slot
        while len(self._slots) > self.prefix_slots:
            self._slots.popitem(last=False)
        return slot

    def prompt_logits(self, ids: np.ndarray, *, adapter: str | None = None) -> np.ndarray:
        """Next-token logits at every position of one prompt, shape (prompt_len, vocab), float32 (for scoring)."""
        params = self._og.GeneratorParams(self.model)
        params.set_search_options(max_length=len(ids) + 1, do_sample=False, batch_size=1)
        with self._lock:
            generator = self._og.Generator(self.model, params)
            self._activate(generator, adapter)
            generator.append_tokens(np.asarray([ids], dtype=np.int32))
            return np.asarray(generator.get_output("logits"))[0]  # (prompt_len, vocab)

    @staticmethod
    def _start(batch: list[GenRequest]) -> None:
        now = time.perf_counter()
        for req in batch:
            req.started_at = now

    def _decode(self, generator: Any, batch: list[GenRequest]) -> None:
        """The decode loop: step the generator until every row has finished, stopped or been cancelled."""
        rows = [_Row(r, self.tokenizer, self.eos_ids) for r in batch]
        logits_wanted = any(r.wants_logits for r in batch)
        step = 0
        while not generator.is_done():
            if not any(row.live for row in rows):
                break
            if logits_wanted:
                logits = generator.get_logits()[:, -1]  # (batch, vocab): what the next token is chosen from
                for i, row in enumerate(rows):
                    if row.live and row.req.wants_logits:
                        row.observe(logits[i], step)
            try:
                generator.generate_next_token()
            except RuntimeError as exc:  # e.g. a grammar the tokenizer cannot spell; the runtime says which
                raise FinmedError(f"model {self.name!r}: generation failed: {_first_line(exc)}") from None
            tokens = generator.get_next_tokens()  # (batch,)
            now = time.perf_counter()
            for i, row in enumerate(rows):
                if row.live:
                    row.push(int(tokens[i]), now)
            step += 1
        for row in rows:
            if row.live:
                row.finish("length")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{os.getpid()}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def _export_meta(folder: Path) -> dict[str, Any]:
    """The folder's finmed_export.json ({} for folders exported elsewhere)."""
    path = Path(folder) / EXPORT_META
    try:
        meta = json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        return {}
    return meta if isinstance(meta, dict) else {}
