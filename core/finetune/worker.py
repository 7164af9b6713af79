"""What each torchrun process runs: `python -m core.finetune.worker CONFIG.yaml [--resume] [--stop-after N]`.

core/finetune/launch.py writes the resolved config and starts this on every rank; the recipe finds its rank in
torchrun's environment. A project error is printed as one line (by rank 0) and ends the process non-zero.
`--stop-after N` ends the run after step N as if the process had been killed (the last checkpoint stays for
--resume); tests use it to save with one world size and resume with another.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


class _Stopped(Exception):
    """--stop-after reached."""


def main(argv: list[str] | None = None) -> int:
    """Run this rank's part of the fine-tune; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m core.finetune.worker")
    parser.add_argument("config")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--stop-after", type=int, default=None)
    args = parser.parse_args(argv)

    from core.errors import FinmedError
    from core.finetune.config import load_config
    from core.finetune.run import run_training

    rank = int(os.environ.get("RANK", "0"))

    def stop(step: int, _row: dict[str, Any]) -> None:
        if args.stop_after is not None and step >= args.stop_after:
            raise _Stopped

    try:
        run_training(load_config(args.config), resume=args.resume, show_progress=rank == 0, on_step=stop)
    except _Stopped:
        if rank == 0:
            print(f"stopped after step {args.stop_after} (--stop-after)", file=sys.stderr)
        return 3
    except FinmedError as exc:
        if rank == 0:
            print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
