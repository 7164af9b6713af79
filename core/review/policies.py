"""Routing policies as data: YAML rules on a model output's parsed fields decide whether and where it is reviewed.

A policy file has `name`, `version`, `domain`, `params` (values rules refer to as `$name`, overridable at load) and
an ordered list of `rules`, each with `name`, `queue` (analyst | radiologist | compliance), `priority` and a `when`
condition. The first matching rule routes the item; every matching rule is stored as a reason. Conditions:

- `{field: risk_level, op: ">=", value: 3}`; ops `== != > >= < <= in`, plus `present`/`missing` (no value);
- `{unparseable: true}`: the output could not be parsed;
- `{diff: [{field: a, scale: 0.2}, {field: b}], op: ">", value: 0.4}`: |a*scale - b*scale| compared to value;
- `{sample: 0.05}`: a deterministic pseudo-random draw from the policy name and the output id;
- `{all: [...]}`, `{any: [...]}`, `{not: {...}}`.

The evaluator is hand-written: it is forty lines, and a general rule engine (e.g. a JSON-logic library) would add
an expression language reviewers must learn without making these five condition kinds clearer.
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.errors import NotFoundError, ValidationError
from core.review.tables import QUEUES

OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "in": lambda a, b: a in b,
}
CONDITION_KEYS = ("field", "unparseable", "diff", "sample", "all", "any", "not")


@dataclass(frozen=True)
class Rule:
    """One routing rule: where a matching output goes and with what priority."""

    name: str
    queue: str
    priority: int
    when: dict[str, Any]


@dataclass(frozen=True)
class Policy:
    """A loaded, validated policy; `content_hash` is the SHA-256 of its effective content (after overrides)."""

    name: str
    version: int
    domain: str
    params: dict[str, Any]
    rules: tuple[Rule, ...]
    content_hash: str
    content: str
    source: str = ""


@dataclass(frozen=True)
class Route:
    """Where a routed output goes: queue, priority and the names of every rule that matched."""

    queue: str
    priority: int
    reasons: tuple[str, ...]


def _substitute(value: Any, params: Mapping[str, Any], where: str) -> Any:
    if isinstance(value, str) and value.startswith("$"):
        key = value[1:]
        if key not in params:
            raise ValidationError(f"{where}: unknown parameter '{value}' (define it under `params`)")
        return params[key]
    if isinstance(value, list):
        return [_substitute(v, params, where) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, params, where) for k, v in value.items()}
    return value


def _check_condition(cond: Any, where: str) -> None:
    if not isinstance(cond, dict) or not any(k in cond for k in CONDITION_KEYS):
        raise ValidationError(f"{where}: a condition needs one of {', '.join(CONDITION_KEYS)}, got {cond!r}")
    if "field" in cond and cond.get("op", "==") not in (*OPS, "present", "missing"):
        raise ValidationError(f"{where}: unknown op '{cond.get('op')}' (use {', '.join(OPS)}, present, missing)")
    if "diff" in cond and (not isinstance(cond["diff"], list) or len(cond["diff"]) != 2 or cond.get("op") not in OPS):
        raise ValidationError(f"{where}: `diff` needs two field terms and an `op`")
    if "sample" in cond and not (isinstance(cond["sample"], int | float) and 0 <= cond["sample"] <= 1):
        raise ValidationError(f"{where}: `sample` must be a rate between 0 and 1, got {cond['sample']!r}")
    for key in ("all", "any"):
        for i, sub in enumerate(cond.get(key, [])):
            _check_condition(sub, f"{where}.{key}[{i}]")
    if "not" in cond:
        _check_condition(cond["not"], f"{where}.not")


def parse_policy(text: str, *, source: str = "<string>", overrides: Mapping[str, Any] | None = None) -> Policy:
    """Validate policy YAML `text` and return the effective policy.

    Args:
        text: the YAML document.
        source: file name used in error messages.
        overrides: parameter values replacing those under `params` (e.g. `{"audit_rate": 0.1}`).

    Raises:
        ValidationError: naming the file, the rule and the field that is wrong.
    """
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValidationError(f"{source}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise ValidationError(f"{source}: a policy is a mapping with name, version, domain, params and rules")
    for key in ("name", "version", "domain", "rules"):
        if key not in doc:
            raise ValidationError(f"{source}: missing `{key}`")
    if not isinstance(doc["version"], int) or doc["version"] < 1:
        raise ValidationError(f"{source}: `version` must be a positive integer, got {doc['version']!r}")
    params = dict(doc.get("params") or {})
    for key, value in (overrides or {}).items():
        if key not in params:
            raise ValidationError(f"{source}: cannot override unknown parameter '{key}' (known: {', '.join(params)})")
        params[key] = value
    rules = []
    for i, raw in enumerate(doc["rules"] or []):
        where = f"{source}: rule {i + 1} ({raw.get('name', '?') if isinstance(raw, dict) else '?'})"
        if not isinstance(raw, dict) or "name" not in raw or "when" not in raw:
            raise ValidationError(f"{where}: a rule needs `name`, `queue` and `when`")
        if raw.get("queue") not in QUEUES:
            raise ValidationError(f"{where}: queue must be one of {', '.join(QUEUES)}, got {raw.get('queue')!r}")
        when = _substitute(raw["when"], params, where)
        _check_condition(when, where)
        rules.append(Rule(str(raw["name"]), raw["queue"], int(raw.get("priority", 0)), when))
    if not rules:
        raise ValidationError(f"{source}: `rules` is empty")
    effective = {**doc, "params": params}
    canonical = json.dumps(effective, sort_keys=True, separators=(",", ":"), default=str)
    return Policy(
        name=str(doc["name"]),
        version=doc["version"],
        domain=str(doc["domain"]),
        params=params,
        rules=tuple(rules),
        content_hash=hashlib.sha256(canonical.encode()).hexdigest(),
        content=canonical,
        source=source,
    )


def load_policy(path: str | Path, *, overrides: Mapping[str, Any] | None = None) -> Policy:
    """Load and validate the policy file at `path` (see `parse_policy`).

    Raises:
        NotFoundError: the file does not exist.
        ValidationError: the file is not a valid policy.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"routing policy file {path} does not exist")
    return parse_policy(path.read_text(encoding="utf-8"), source=str(path), overrides=overrides)


def _lookup(parsed: Mapping[str, Any] | None, dotted: str) -> Any:
    value: Any = parsed
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def sample_draw(policy_name: str, output_id: int) -> float:
    """A uniform number in [0, 1) fixed by the policy name and the output id (same output, same draw)."""
    digest = hashlib.sha256(f"{policy_name}:{output_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def evaluate(cond: Mapping[str, Any], *, parsed: Mapping[str, Any] | None, output_id: int, policy_name: str) -> bool:
    """Whether condition `cond` holds for an output with `parsed` fields (None when unparseable)."""

    def ev(c: Mapping[str, Any]) -> bool:
        return evaluate(c, parsed=parsed, output_id=output_id, policy_name=policy_name)

    if "all" in cond:
        return all(ev(c) for c in cond["all"])
    if "any" in cond:
        return any(ev(c) for c in cond["any"])
    if "not" in cond:
        return not ev(cond["not"])
    if "unparseable" in cond:
        return (parsed is None) == bool(cond["unparseable"])
    if "sample" in cond:
        return sample_draw(policy_name, output_id) < float(cond["sample"])
    if "diff" in cond:
        terms = [_number(_lookup(parsed, t["field"])) for t in cond["diff"]]
        if any(t is None for t in terms):
            return False
        a, b = (t * float(spec.get("scale", 1.0)) for t, spec in zip(terms, cond["diff"], strict=True))  # type: ignore[operator]
        return OPS[cond["op"]](abs(a - b), cond["value"])
    value = _lookup(parsed, cond["field"])
    op = cond.get("op", "==")
    if op == "present":
        return value is not None
    if op == "missing":
        return value is None
    if value is None:
        return False
    try:
        return bool(OPS[op](value, cond["value"]))
    except TypeError:
        return False  # e.g. a string risk level compared with a number: the rule does not match


def route(policy: Policy, *, parsed: Mapping[str, Any] | None, output_id: int) -> Route | None:
    """Apply `policy` to one output; None when no rule matches (the output is not queued for review)."""
    matched = [r for r in policy.rules if evaluate(r.when, parsed=parsed, output_id=output_id, policy_name=policy.name)]
    if not matched:
        return None
    return Route(matched[0].queue, matched[0].priority, tuple(r.name for r in matched))


def domain_policy(
    domain: str, name: str = "default", *, plugins: Iterable[Any] | None = None, **overrides: Any
) -> Policy:
    """The routing policy `name` that the domain plugin `domain` registers in `DomainPlugin.review_policies`.

    A factory there takes parameter overrides as keyword arguments and returns a `Policy`, typically
    `lambda **o: load_policy(Path(__file__).with_name("review_policy.yaml"), overrides=o)`.

    Raises:
        NotFoundError: no such domain plugin, or it registers no policy called `name`.
    """
    if plugins is None:
        from core.plugins import load_plugins

        plugins = load_plugins()
    for plugin in plugins:
        if plugin.name == domain:
            if name not in plugin.review_policies:
                known = ", ".join(plugin.review_policies) or "none"
                raise NotFoundError(
                    f"domain '{domain}' registers no review policy '{name}' (registered: {known}); "
                    "add it to DomainPlugin.review_policies in its plugin.py"
                )
            return plugin.review_policies[name](**overrides)
    raise NotFoundError(f"no domain plugin named '{domain}' is installed")
