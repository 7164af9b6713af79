"""Read a model server's /metrics (Prometheus text) for the operations page, parsed by prometheus_client."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from core.auth.roles import require_role
from core.db.tables import User
from core.errors import FinmedError, ValidationError

ENGINEER_ROLES = ("engineer",)  # admin is always allowed


@dataclass(frozen=True)
class Sample:
    """One sample of a scraped metric."""

    name: str
    labels: dict[str, str]
    value: float


def scrape(*, user: User, url: str, api_key: str | None = None, timeout_s: float = 5.0) -> list[Sample]:
    """Every sample the server at `url` exposes (`url` is the server's base URL or its /metrics URL).

    Raises:
        ValidationError: not an http(s) URL.
        FinmedError: the server cannot be reached or refuses the key, naming the URL.
    """
    require_role(user, *ENGINEER_ROLES, action="read serving metrics")
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValidationError(f"serving URL '{url}' must start with http:// or https://")
    if not url.endswith("/metrics"):
        url += "/metrics"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(url, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise FinmedError(f"cannot reach the model server at {url}: {exc}") from None
    if response.status_code in (401, 403):
        raise FinmedError(f"{url} refused the request ({response.status_code}): give an API key (`finmed serve keys`)")
    if response.status_code != 200:
        raise FinmedError(f"{url} answered {response.status_code}")
    return [
        Sample(sample.name, dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    ]
