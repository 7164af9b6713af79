"""Finance's data-filter checks (core.data.checks seam): the answer agrees with the features, the codes are real.

Tier 2 reads the feature summary of the risk prompt (domains/finance/prompts.py `summarise`) back into feature
values and applies the reason thresholds of domains/finance/features.py `REASONS`: an answer reason whose feature
does not fire ("night_time" at local hour 14), a level of 4 or 5 with no risk feature firing, or a prompt whose
own "rule signals" line disagrees with its values, fails. Tier 3 checks currency codes against ISO 4217 (pycountry,
plus the withdrawn codes of ISO 4217 list three, which no maintained package here ships), countries against
ISO 3166-1 and its withdrawn codes (ISO 3166-3, pycountry), and merchant category codes against the ISO 18245
range table.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache

from core.data.checks import DataChecks, Problem, TermGroup, TextSpan
from core.data.records import Record
from domains.finance.features import REASON_BY_ZH, REASONS
from domains.finance.parser import parse_risk
from domains.finance.prompts import FENCE_CLOSE, FENCE_OPEN

REASON_CODES = {
    "not_risk_record": "no risk answer and no feature summary: not a risk-scoring record, so tier 2 did not check it",
    "features_missing": "a risk answer without the feature summary it should agree with",
    "answer_unparseable": "the answer is not in the strict risk format (domains/finance/parser.py)",
    "reason_unsupported": "the answer gives a reason whose feature does not fire in the summary",
    "level_without_risk_feature": "level 4 or 5 while no risk feature fires",
    "signals_disagree": "the prompt's 'rule signals' line disagrees with its own feature values",
    "unknown_currency": "not an ISO 4217 currency code (current or withdrawn)",
    "unknown_country": "not an ISO 3166-1 country code (current or withdrawn)",
    "invalid_mcc": "not a merchant category code in an ISO 18245 range",
}

_NUM = r"(-?[\d.]+|n/a|nan)"
PATTERNS = {
    "amount_z": re.compile(rf"amount: .*?\(robust z {_NUM}"),
    "interval_abs_z": re.compile(rf"since previous: .*?\(robust z {_NUM}\)"),
    "dist_home_km": re.compile(rf"from usual location: {_NUM} km"),
    "speed_kmh": re.compile(rf"km at {_NUM} km/h"),
    "local_hour": re.compile(rf"local hour {_NUM}"),
    "count_1h": re.compile(rf"last 1h/24h: {_NUM}/"),
    "small_count_1h": re.compile(rf"small in 1h: {_NUM}"),
}
FEATURE_OF = {r.name: r.feature for r in REASONS}
NEW_MERCHANT = re.compile(r"new merchant: (yes|no)")
SIGNALS = re.compile(r"(?:rule signals|规则信号): (.*)$", re.M)
CURRENCY_IN_TEXT = re.compile(r"amount: [\d.]+ ([A-Za-z]{3})\b")
MCC_IN_TEXT = re.compile(r"\bMCC:? (\w+)")

# ISO 4217 list three (withdrawn codes), the ones transaction histories still carry.
HISTORIC_CURRENCIES = frozenset(
    "ADP AFA ALK AOK AON AOR ARA ARP ATS AZM BEF BGL BRB BRC BRE BRN BRR BYB BYR CSD CSK CYP DDM DEM ECS EEK ESP FIM "
    "FRF GHC GRD GWP HRK IEP ILP ITL LTL LUF LVL MGF MLF MRO MTL MXP MZM NLG PEI PLZ PTE ROL RUR SDD SIT SKK SRG STD "
    "SUR TMM TPE TRL UAK VEB VEF XEU YDD YUD YUM YUN ZMK ZRN ZWD ZWN ZWR".split()
)
# ISO 18245 merchant category code ranges (the groups card networks publish).
MCC_GROUPS = (
    (1, 1499, "agricultural services"),
    (1500, 2999, "contracted services"),
    (3000, 3299, "airlines"),
    (3300, 3499, "car rental"),
    (3500, 3999, "lodging"),
    (4000, 4799, "transportation services"),
    (4800, 4999, "utility services"),
    (5000, 5599, "retail outlet services"),
    (5600, 5699, "clothing stores"),
    (5700, 7299, "miscellaneous stores"),
    (7300, 7999, "business services"),
    (8000, 8999, "professional services and membership organizations"),
    (9000, 9999, "government services"),
)


def _user(record: Record) -> str:
    return next((m.content for m in reversed(record.messages) if m.role == "user"), "")


def read_features(text: str) -> dict[str, float] | None:
    """Feature values from a risk prompt's summary, or None when the text has no summary."""
    values: dict[str, float] = {}
    for name, pattern in PATTERNS.items():
        match = pattern.search(text)
        if match is None:
            if name == "interval_abs_z" and "since previous: first transaction" in text:
                values[name] = 0.0
                continue
            return None
        try:
            values[name] = abs(float(match.group(1))) if name == "interval_abs_z" else float(match.group(1))
        except ValueError:
            values[name] = 0.0
    merchant = NEW_MERCHANT.search(text)
    values["new_merchant"] = 1.0 if merchant and merchant.group(1) == "yes" else 0.0
    values["night"] = 1.0 if values["local_hour"] < 6 else 0.0
    return values


def fired(values: dict[str, float]) -> list[str]:
    """Reason names whose threshold (features.REASONS) the values meet, in REASONS order.

    The summary rounds values (z to one decimal, km to units), so a value within rounding of its threshold counts
    as firing: the check never fails a record for a rounding it did not make.
    """
    slack = {"amount_z": 0.05, "interval_abs_z": 0.05, "dist_home_km": 0.5, "speed_kmh": 0.5}
    names = []
    for reason in REASONS:
        value, tol = values[reason.feature], slack.get(reason.feature, 0.0)
        ok = value >= reason.threshold - tol if reason.op == ">=" else value <= reason.threshold + tol
        if ok:
            names.append(reason.name)
    return names


def check_consistency(record: Record) -> Iterator[Problem]:
    """Tier 2: level and reasons agree with the features in the prompt (see the module docstring)."""
    text = _user(record)
    values = read_features(text)
    parsed = parse_risk(record.answer)
    looks_like_risk = bool(re.match(r"\s*(Risk level|风险等级)", record.answer, re.I))
    if values is None:
        if parsed.ok or looks_like_risk:
            yield Problem("features_missing", "the prompt has no feature summary (amount, since previous, ...)")
        else:
            yield Problem("not_risk_record", "neither a risk answer nor a feature summary", drop=False)
        return
    if not parsed.ok:
        yield Problem("answer_unparseable", parsed.error)
        return
    firing = fired(values)
    signals = SIGNALS.search(text)
    if signals:
        listed = [REASON_BY_ZH.get(s.strip(), s.strip()) for s in re.split(r"[,，]", signals.group(1))]
        listed = [s for s in listed if s and s not in ("none", "无")]
        extra = [s for s in listed if s not in firing]
        if extra:
            yield Problem("signals_disagree", f"rule signals list {', '.join(extra)} but the values do not fire it")
            return
    unsupported = [r for r in parsed.reasons if r not in firing]
    if unsupported:
        detail = ", ".join(f"{r} ({FEATURE_OF[r]}={values[FEATURE_OF[r]]:g})" for r in unsupported)
        yield Problem("reason_unsupported", f"answer gives {detail}, below its threshold")
    elif (parsed.level or 0) >= 4 and not firing:
        yield Problem("level_without_risk_feature", f"level {parsed.level} but no risk feature fires")


@lru_cache(maxsize=1)
def _codes() -> tuple[frozenset[str], frozenset[str]]:
    import pycountry

    currencies = frozenset(c.alpha_3 for c in pycountry.currencies) | HISTORIC_CURRENCIES
    countries = {c.alpha_2 for c in pycountry.countries} | {c.alpha_3 for c in pycountry.countries}
    for c in pycountry.historic_countries:
        countries |= {c.alpha_3, getattr(c, "alpha_2", c.alpha_3), getattr(c, "alpha_4", c.alpha_3)}
    return currencies, frozenset(countries)


def mcc_group(code: str) -> str | None:
    """The ISO 18245 group of a 4-digit merchant category code, or None."""
    if not re.fullmatch(r"\d{4}", code):
        return None
    value = int(code)
    return next((name for lo, hi, name in MCC_GROUPS if lo <= value <= hi), None)


def check_codes(record: Record) -> Iterator[Problem]:
    """Tier 3: currency, country and MCC in the prompt or the record's meta are real codes."""
    currencies, countries = _codes()
    text, meta = _user(record), record.meta
    for currency in filter(None, [*CURRENCY_IN_TEXT.findall(text), meta.get("currency")]):
        if str(currency).upper() not in currencies:
            yield Problem("unknown_currency", f"currency {currency!r}")
            return
    country = meta.get("country")
    if country is not None and str(country).upper() not in countries:
        yield Problem("unknown_country", f"country {country!r}")
        return
    for mcc in filter(None, [*MCC_IN_TEXT.findall(text), meta.get("mcc")]):
        if mcc_group(str(mcc)) is None:
            yield Problem("invalid_mcc", f"MCC {mcc!r}")
            return


def description_span(record: Record) -> list[TextSpan]:
    """Back-translation may paraphrase the customer's description only (inside the fenced JSON literal)."""
    for i in range(len(record.messages) - 1, -1, -1):
        content = record.messages[i].content
        if record.messages[i].role == "user" and FENCE_OPEN in content:
            start = content.index(FENCE_OPEN) + len(FENCE_OPEN) + 2  # newline and opening quote
            end = content.find(FENCE_CLOSE, start) - 2  # closing quote and newline
            return [TextSpan(i, start, end)] if end > start else []
    return []


def vocabulary() -> list[TermGroup]:
    """Label-neutral substitutions: the features never read the channel or the description's wording."""
    return [
        TermGroup(("card", "online", "transfer", "atm"), "sibling", "finance channels"),
        TermGroup(("grocery purchase", "supermarket purchase", "food store purchase"), "synonym", "descriptions"),
        TermGroup(("coffee shop", "cafe", "coffee bar"), "synonym", "descriptions"),
        TermGroup(("fuel station", "petrol station", "gas station"), "synonym", "descriptions"),
        TermGroup(("pharmacy", "drugstore", "chemist"), "synonym", "descriptions"),
        TermGroup(("restaurant dinner", "restaurant meal"), "synonym", "descriptions"),
        TermGroup(("online order", "web order", "internet order"), "synonym", "descriptions"),
        TermGroup(tuple(name for _, _, name in MCC_GROUPS), "sibling", "ISO 18245 MCC groups"),
    ]


DATA_CHECKS = DataChecks(
    semantic=(check_consistency,),
    knowledge=(check_codes,),
    reason_codes=REASON_CODES,
    vocabulary=vocabulary,
    free_text=description_span,
    languages=("en", "zh"),
)
