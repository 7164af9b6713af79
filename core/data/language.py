"""Offline language identification for the filter's tier 1 (lingua-language-detector: models inside the wheel).

The detector knows a fixed set of common languages (not only the expected ones), so a French record is identified
as French and rejected instead of being forced into the nearest expected language.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

# ISO 639-1 codes the detector can tell apart; expected languages must be among them.
KNOWN = ("en", "zh", "fr", "de", "es", "pt", "it", "nl", "ru", "ja", "ko", "ar", "tr", "vi", "pl", "id")
_LETTERS = re.compile(r"[^\W\d_]", re.UNICODE)
MIN_LETTERS = 12  # shorter texts (codes, numbers) are not identified


@lru_cache(maxsize=1)
def _detector() -> Any:
    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

    languages = [Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())) for code in KNOWN]
    return LanguageDetectorBuilder.from_languages(*languages).build()


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of `text`'s language, or None when it has too few letters to tell."""
    sample = text[:1000]
    if len(_LETTERS.findall(sample)) < MIN_LETTERS:
        return None
    language = _detector().detect_language_of(sample)
    return None if language is None else language.iso_code_639_1.name.lower()
