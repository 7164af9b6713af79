"""Write records.jsonl: a small, seeded synthetic instruction set for fine-tuning tests (ours, no outside data).

Run: python tests/assets/finetune/make_records.py  (rewrites records.jsonl next to this file, same bytes each time)
Three shapes are mixed on purpose: chat messages, alpaca (instruction/input/output) and prompt/completion.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SEED = 7
N = 48


def make(n: int = N, seed: int = SEED) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        amount = rng.choice([12, 85, 240, 1250, 4800, 9900])
        hour = rng.choice([2, 3, 10, 14, 23])
        new_place = rng.random() < 0.5
        level = min(5, (amount >= 1250) * 2 + (hour < 6 or hour > 22) + new_place * 2)
        basis = [
            b
            for b, on in (
                ("large_amount", amount >= 1250),
                ("night_time", hour < 6 or hour > 22),
                ("new_location", new_place),
            )
            if on
        ] or ["none"]
        question = f"Transaction of {amount}.00 USD at {hour:02d}:14 local time" + (
            " from a new location." if new_place else "."
        )
        answer = f"Risk level: {level}; Basis: {', '.join(basis)}"
        if i % 3 == 0:
            rows.append(
                {
                    "messages": [
                        {"role": "system", "content": "You are a careful assistant."},
                        {"role": "user", "content": question},
                        {"role": "assistant", "content": answer},
                    ],
                    "meta": {"id": i},
                }
            )
        elif i % 3 == 1:
            rows.append({"instruction": "Give the risk level and basis.", "input": question, "output": answer})
        else:
            rows.append({"prompt": question, "completion": answer})
    return rows


if __name__ == "__main__":
    out = Path(__file__).with_name("records.jsonl")
    out.write_text("".join(json.dumps(r) + "\n" for r in make()))
    print(f"wrote {out}")
