"""What produced a finance assessment: the numeric model, the LLM and the level calibration, by version.

Stored with every assessment and every routed review item, so a reviewer reads which registered model version and
which calibration gave a transaction its level (not just a file name).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.db.tables import ModelVersion


@dataclass(frozen=True)
class Versions:
    """What produced an assessment: numeric model hash, LLM (registered "name:vN" or its own name), calibration."""

    numeric: str
    llm: str | None = None
    calibration: str | None = None
    llm_registered: ModelVersion | None = field(default=None, compare=False)

    def label(self) -> str:
        """One string for the assessment's model_version column."""
        parts = [self.numeric] + ([f"llm:{self.llm}"] if self.llm else []) + [self.calibration or "fixed-levels"]
        return "+".join(parts)[:200]
