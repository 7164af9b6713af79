"""Per-tier counts of the data filter: passed, dropped and flagged records, reasons with counts and a few examples.

The invariant every tier keeps, and `FilterReport.check_totals` asserts before anything is written: passed +
dropped = input, and the next tier's input is this tier's passed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

EXAMPLES_PER_REASON = 3
EXAMPLE_CHARS = 200


@dataclass
class TierStats:
    """Counts of one tier."""

    name: str
    input: int = 0
    passed: int = 0
    dropped: int = 0
    flagged: int = 0
    seconds: float = 0.0
    reasons: Counter[str] = field(default_factory=Counter)
    flags: Counter[str] = field(default_factory=Counter)
    repairs: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def example(self, code: str, line: int, detail: str) -> None:
        """Keep the first few examples of a reason (line number and detail)."""
        kept = self.examples.setdefault(code, [])
        if len(kept) < EXAMPLES_PER_REASON:
            kept.append({"line": line, "detail": detail[:EXAMPLE_CHARS]})

    def to_json(self, descriptions: dict[str, str]) -> dict[str, Any]:
        """The tier's entry in report.json (no timings, so the report is the same for the same input)."""

        def entries(counter: Counter[str]) -> dict[str, Any]:
            return {
                code: {
                    "count": count,
                    "description": descriptions.get(code, ""),
                    "examples": self.examples.get(code, []),
                }
                for code, count in sorted(counter.items())
            }

        return {
            "tier": self.name,
            "input": self.input,
            "passed": self.passed,
            "dropped": self.dropped,
            "flagged": self.flagged,
            "reasons": entries(self.reasons),
            "flags": entries(self.flags),
            "repairs": dict(sorted(self.repairs.items())),
        }


@dataclass
class FilterReport:
    """All tiers of one run, in order."""

    tiers: list[TierStats]

    def check_totals(self) -> None:
        """Raise AssertionError when a tier's counts do not add up (a bug, never a data problem)."""
        for prev, tier in zip([None, *self.tiers[:-1]], self.tiers, strict=True):
            assert tier.passed + tier.dropped == tier.input, f"{tier.name}: passed + dropped != input"
            assert sum(tier.reasons.values()) == tier.dropped, f"{tier.name}: reason counts != dropped"
            if prev is not None:
                assert tier.input == prev.passed, f"{tier.name}: input != {prev.name} passed"

    def to_json(self, descriptions: dict[str, str], **head: Any) -> dict[str, Any]:
        """report.json: `head` (files, domain, totals) then the tiers."""
        out = dict(head)
        out["records_in"] = self.tiers[0].input if self.tiers else 0
        out["records_out"] = self.tiers[-1].passed if self.tiers else 0
        out["tiers"] = [t.to_json(descriptions) for t in self.tiers]
        return out
