"""Strict parser for the model's risk answer: a level 0-5 and known reason names, or a parse failure (never a guess).

Accepted, as the whole answer (surrounding whitespace and a trailing period aside):
    `Risk level: 3; Basis: large_amount, night_time`      (English)
    `风险等级:3, 依据:大额转账,夜间操作`                      (Chinese; full- or half-width colon and comma)
Reasons are reason names from features.REASONS (English names in either language, Chinese labels in Chinese);
`none` (or `无`) stands for no reason. Anything else fails, and the caller routes the transaction to review.

`answer_regex` is the same format as a regex the serving engine decodes under (guidance), so even a quantized model
cannot leave it; the parser stays the check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from domains.finance.features import REASON_BY_ZH, REASON_NAMES

EN = re.compile(r"Risk level:\s*([0-5])\s*;\s*Basis:\s*(.+?)\.?", re.IGNORECASE)
ZH = re.compile(r"风险等级\s*[:：]\s*([0-5])\s*[,，;；]\s*依据\s*[:：]\s*(.+?)[。.]?")
SPLIT = re.compile(r"\s*[,，、]\s*")


def _alternatives(names: list[str]) -> str:
    return "(" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) + ")"


def answer_regex(language: str = "en", *, after: str = "") -> str:
    """A regex of answers `parse_risk` accepts, in the form `format_risk` writes (one line, known reasons).

    Args:
        language: "en" or "zh".
        after: text the prompt already ends with (the answer prefix "Risk level: "); the regex then matches the
            rest of the answer only.

    Raises:
        ValueError: unknown language, or `after` is not the start of the answer.
    """
    if language == "en":
        head, reason, sep, empty = "Risk level: ", _alternatives(list(REASON_NAMES)), ", ", "none"
        tail = f"[0-5]; Basis: ({empty}|{reason}({re.escape(sep)}{reason}){{0,{len(REASON_NAMES) - 1}}})"
    elif language == "zh":
        head, reason, sep, empty = "风险等级:", _alternatives(list(REASON_BY_ZH)), ",", "无"
        tail = f"[0-5], 依据:({empty}|{reason}({re.escape(sep)}{reason}){{0,{len(REASON_BY_ZH) - 1}}})"
    else:
        raise ValueError(f"language must be 'en' or 'zh', not {language!r}")
    if not head.startswith(after):
        raise ValueError(f"{after!r} is not the start of a {language} risk answer ({head!r})")
    return re.escape(head[len(after) :]) + tail


ANSWER_REGEX = {"en": answer_regex("en"), "zh": answer_regex("zh")}


@dataclass(frozen=True)
class ParsedRisk:
    """Outcome of parsing one answer: `ok` False means `level` is None and `error` says why."""

    ok: bool
    level: int | None = None
    reasons: list[str] = field(default_factory=list)
    error: str = ""


def _reasons(text: str) -> list[str] | str:
    """Known reason names in `text`, or an error string."""
    text = text.strip()
    if text.lower() in ("none", "无"):
        return []
    names = []
    for part in SPLIT.split(text):
        name = REASON_BY_ZH.get(part, part)
        if name not in REASON_NAMES:
            return f"unknown reason {part!r}"
        if name not in names:
            names.append(name)
    return names


def parse_risk(answer: str) -> ParsedRisk:
    """Parse one model answer strictly (see the module docstring)."""
    text = answer.strip()
    for pattern in (EN, ZH):
        match = pattern.fullmatch(text)
        if match:
            reasons = _reasons(match.group(2))
            if isinstance(reasons, str):
                return ParsedRisk(False, error=reasons)
            return ParsedRisk(True, int(match.group(1)), reasons)
    return ParsedRisk(False, error=f"not in the risk format: {text[:80]!r}")


def format_risk(level: int, reasons: list[str], *, language: str = "en") -> str:
    """The answer the parser accepts, e.g. for training targets and few-shot examples."""
    if language == "zh":
        labels = {r: zh for zh, r in REASON_BY_ZH.items()}
        return f"风险等级:{level}, 依据:{','.join(labels[r] for r in reasons) or '无'}"
    return f"Risk level: {level}; Basis: {', '.join(reasons) or 'none'}"
