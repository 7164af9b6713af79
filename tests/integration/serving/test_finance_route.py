"""POST /v1/finance/score on the real model server: numeric screen plus adjudication by a served model."""

from __future__ import annotations

import httpx
import pandas as pd

from core.settings import get_settings
from domains.finance.features import compute_features
from domains.finance.numeric import NumericModel
from domains.finance.synthetic import generate


def test_finance_score_adjudicates_with_a_served_model(server) -> None:  # type: ignore[no-untyped-def]
    frame = generate(40, seed=1, days=10, fraud_rate=0.3)
    model = NumericModel.fit(compute_features(frame), frame["is_fraud"].to_numpy(), max_iter=5)  # weak: a wide band
    model.save(get_settings().data_dir / "finance" / "numeric.joblib")  # where the route looks by default
    rows = generate(40, seed=2, days=10, fraud_rate=0.3).head(60).drop(columns=["is_fraud", "scheme"])
    rows["timestamp"] = rows["timestamp"].astype(str)
    body = {"transactions": rows.to_dict("records"), "llm_budget": 3, "model": "tiny"}
    url = f"{server.url}/v1/finance/score"
    assert httpx.post(url, json=body, timeout=60).status_code == 401  # behind the API keys
    response = httpx.post(url, json=body, headers=server.headers, timeout=120)
    assert response.status_code == 200, response.text
    scored = pd.DataFrame(response.json()["assessments"])
    assert len(scored) == 60 and int(scored["adjudicated"].sum()) == 3
    assert scored.loc[scored["adjudicated"], "llm_answer"].notna().all()
    missing = httpx.post(url, json={**body, "model": "nope"}, headers=server.headers, timeout=60)
    assert missing.status_code == 404 and "tiny" in missing.json()["error"]["message"]
    unnamed = httpx.post(url, json={**body, "model": None}, headers=server.headers, timeout=60)
    assert unnamed.status_code == 422 and "model" in unnamed.json()["error"]["message"]
