"""The duplicate index on disk decides exactly as datasketch's in-memory MinHashLSH did, and leaves no folder."""

from __future__ import annotations

import hashlib
import json
import random
import tempfile
from pathlib import Path

import pytest
from datasketch import MinHashLSH

from core.data.checks import DataChecks
from core.data.dedup import Deduplicator, _band_key, normalise
from core.data.filter import FilterOptions, RecordFilter, run_filter

WORDS = (
    "card payment transfer savings coffee noon rent month groceries saturday device location merchant account "
    "holder weekly pattern evening refund online store fuel station pharmacy salary deposit utility invoice"
).split()


class InMemoryReference:
    """The previous implementation: exact hashes in a dict, bands in datasketch's MinHashLSH (dict storage)."""

    def __init__(self, dedup: Deduplicator) -> None:
        self.signature = dedup._minhash  # same MinHash parameters: only the index differs
        self.exact: dict[bytes, int] = {}
        self.lsh = MinHashLSH(threshold=dedup.threshold, num_perm=dedup.num_perm, hashfunc=_band_key)

    def check(self, text: str, line: int) -> tuple[str, int] | None:
        tokens = normalise(text)
        digest = hashlib.blake2b(" ".join(tokens).encode("utf-8"), digest_size=16).digest()
        if digest in self.exact:
            return "exact_duplicate", self.exact[digest]
        minhash = self.signature(tokens)
        near = self.lsh.query(minhash)
        if near:
            return "near_duplicate", min(near)
        self.exact[digest] = line
        self.lsh.insert(line, minhash, check_duplication=False)
        return None


def corpus(n: int, seed: int) -> list[str]:
    """Texts with exact duplicates (case and punctuation changed), near duplicates (a few words changed, at several
    distances), short texts and distinct templated ones."""
    rng = random.Random(seed)
    texts: list[str] = []
    for i in range(n):
        roll = rng.random()
        if texts and roll < 0.15:
            texts.append(rng.choice(texts).upper().replace(" ", "  ") + "!")
        elif texts and roll < 0.45:
            words = rng.choice(texts).split()
            for _ in range(rng.choice((1, 1, 2, 4, 8))):
                words[rng.randrange(len(words))] = rng.choice(WORDS)
            texts.append(" ".join(words))
        elif roll < 0.5:
            texts.append(rng.choice(WORDS))
        else:
            length = rng.choice((12, 40, 120))
            texts.append(f"account {i} " + " ".join(rng.choice(WORDS) for _ in range(length)))
    return texts


def test_on_disk_index_decides_as_in_memory_minhash_lsh() -> None:
    texts = corpus(1500, seed=3)
    with Deduplicator() as dedup:
        reference = InMemoryReference(dedup)
        expected = [reference.check(t, n) for n, t in enumerate(texts, start=1)]
        got = [dedup.check(t, n) for n, t in enumerate(texts, start=1)]
    assert got == expected
    kinds = [d[0] if d else "kept" for d in got]
    # the set exercises every decision, near duplicates naming an earlier line that is not always the first
    assert kinds.count("exact_duplicate") > 200 and kinds.count("near_duplicate") > 50 and kinds.count("kept") > 600
    assert len({d[1] for d in got if d and d[0] == "near_duplicate"}) > 20


def test_check_pins_exact_and_near_decisions() -> None:
    base = " ".join(f"{w}{i % 7}" for i, w in enumerate(WORDS * 8))
    with Deduplicator() as dedup:
        assert dedup.check(base, 10) is None
        assert dedup.check(base.upper() + " ...", 11) == ("exact_duplicate", 10)
        words = base.split()
        words[-1] = "tea"  # one shingle of ~230 differs: Jaccard ~0.99
        assert dedup.check(" ".join(words), 12) == ("near_duplicate", 10)
        assert dedup.check("a different record about refunds", 13) is None
        assert dedup.check("A different record, about refunds!", 14) == ("exact_duplicate", 13)


def test_index_folder_is_removed_by_close_and_by_collection() -> None:
    dedup = Deduplicator()
    folder = dedup.folder
    dedup.check("one record to index", 1)
    assert (folder / "index.sqlite").is_file()
    dedup.close()
    dedup.close()  # idempotent
    assert not folder.exists()
    forgotten = Deduplicator()
    folder = forgotten.folder
    del forgotten
    assert not folder.exists()


def test_index_commits_in_batches_and_keeps_answering(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("core.data.dedup.COMMIT_EVERY", 3)
    texts = corpus(200, seed=5)
    with Deduplicator() as dedup:
        reference = InMemoryReference(dedup)
        assert [dedup.check(t, n) for n, t in enumerate(texts)] == [reference.check(t, n) for n, t in enumerate(texts)]


@pytest.mark.parametrize("interrupt", [False, True])
def test_filter_leaves_no_index_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interrupt: bool) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    src = tmp_path / "in.jsonl"
    lines = [
        {"messages": [{"role": "user", "content": f"Question {t}"}, {"role": "assistant", "content": t}]}
        for t in corpus(50, seed=1)
    ]
    src.write_text("".join(json.dumps(x) + "\n" for x in lines))
    seen: list[list[str]] = []

    def progress(_done: int) -> None:
        seen.append([p.name for p in scratch.iterdir()])
        if interrupt and len(seen) == 10:
            raise KeyboardInterrupt

    out = tmp_path / "clean.jsonl"
    checks = DataChecks(languages=())
    if interrupt:
        with pytest.raises(KeyboardInterrupt):
            run_filter(src, out, tmp_path / "r.json", checks=checks, domain="t", options=FilterOptions(),
                       progress=progress)  # fmt: skip
    else:
        result = run_filter(src, out, tmp_path / "r.json", checks=checks, domain="t", options=FilterOptions(),
                            progress=progress)  # fmt: skip
        assert result.report.tiers[0].reasons["exact_duplicate"] > 0
    assert any(name.startswith("finmed-dedup-") for name in seen[0])  # the index lived there while filtering
    assert list(scratch.iterdir()) == []


def test_record_filter_closes_its_index() -> None:
    with RecordFilter(DataChecks(languages=()), FilterOptions()) as flt:
        folder = flt.dedup.folder
        assert folder.is_dir()
    assert not folder.exists()
