"""Atomic writes: a file or folder is built under a hidden temporary name beside its target and renamed over it at
the end, so readers never see half of it and a failure or Ctrl-C leaves the previous version (or nothing).

A few lines, but every package writes results this way; one helper keeps the cleanup on failure identical everywhere.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_file(target: Path, *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `target` (ending in `suffix`, e.g. ".png" for writers that look at it);
    when the block ends without an error it replaces `target`, otherwise it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}-", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(target: Path, data: bytes) -> Path:
    """Write `data` to `target` atomically; returns `target`."""
    with atomic_file(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; when the block ends without an error it replaces `target`
    (an existing folder of that name is removed first), otherwise it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
