"""Exact and near-duplicate detection for the filter's tier 1: a content hash set and datasketch's MinHash LSH.

The default threshold (0.9) is high on purpose: templated records (a risk prompt's feature summary) differ from
each other in a few values only, and at 0.8 distinct transactions with the same shape already collide.

Memory grows with the number of *kept* records (a 16-byte hash and one MinHash LSH entry of 8-byte band keys
each: about 1 KB per record, measured 234 -> 264 MB peak RSS from 10k to 40k records), never with the size of a
record or of the file; so a 1 GB file of 1M one-kilobyte records needs about 1 GB for the index. Past that, shard
the input (by account or source) and filter the shards separately; bench/data.py measures it.
"""

from __future__ import annotations

import hashlib
import re

from datasketch import MinHash, MinHashLSH

NUM_PERM = 64
SHINGLE = 3  # words (a CJK character counts as a word)
_TOKEN = re.compile(r"[\u3400-\u9fff]|[^\W_]+", re.UNICODE)


def normalise(text: str) -> list[str]:
    """Lower-cased word tokens (CJK characters one each), punctuation and spacing ignored."""
    return _TOKEN.findall(text.lower())


def _band_key(band: bytes) -> bytes:
    return hashlib.blake2b(band, digest_size=8).digest()


class Deduplicator:
    """Remembers the records it has kept; says whether a new one is an exact or a near duplicate of one of them."""

    def __init__(self, threshold: float = 0.9, num_perm: int = NUM_PERM) -> None:
        self.threshold = threshold
        self.num_perm = num_perm
        self._exact: dict[bytes, int] = {}
        # band keys hashed to 8 bytes: the index holds a short key per band instead of the band's hash values
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, hashfunc=_band_key)
        template = MinHash(num_perm=num_perm, seed=1)
        self._permutations, self._scheme = template.permutations, template.scheme  # computed once, not per record

    def _minhash(self, tokens: list[str]) -> MinHash:
        m = MinHash(num_perm=self.num_perm, seed=1, permutations=self._permutations, scheme=self._scheme)
        if len(tokens) < SHINGLE:
            shingles = {" ".join(tokens)}
        else:
            shingles = {" ".join(tokens[i : i + SHINGLE]) for i in range(len(tokens) - SHINGLE + 1)}
        m.update_batch([s.encode("utf-8") for s in shingles])
        return m

    def check(self, text: str, line: int) -> tuple[str, int] | None:
        """("exact_duplicate" | "near_duplicate", line of the kept record) or None; a new record is remembered."""
        tokens = normalise(text)
        digest = hashlib.blake2b(" ".join(tokens).encode("utf-8"), digest_size=16).digest()
        if digest in self._exact:
            return "exact_duplicate", self._exact[digest]
        minhash = self._minhash(tokens)
        near = self._lsh.query(minhash)
        if near:
            return "near_duplicate", min(near)
        self._exact[digest] = line
        self._lsh.insert(line, minhash, check_duplication=False)
        return None
