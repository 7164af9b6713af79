"""POST /v1/finance/score through the plugin's router, on a fitted numeric model."""

from pathlib import Path

import pandas as pd
from fastapi import FastAPI
from fastapi.testclient import TestClient

from core.plugins import load_plugins
from domains.finance.features import compute_features
from domains.finance.numeric import NumericModel
from domains.finance.synthetic import generate


def test_score_endpoint(tmp_path: Path) -> None:
    frame = generate(40, seed=1, days=10, fraud_rate=0.3)
    model = NumericModel.fit(compute_features(frame), frame["is_fraud"].to_numpy(), max_iter=20)
    path = model.save(tmp_path / "numeric.joblib")
    plugin = next(p for p in load_plugins() if p.name == "finance")
    app = FastAPI()
    app.include_router(plugin.api_routes(numeric_model=path))
    client = TestClient(app)
    rows = frame.head(30).drop(columns=["is_fraud", "scheme"]).rename(columns={"amount": "amt"})
    rows["timestamp"] = rows["timestamp"].astype(str)
    payload = rows.to_dict("records")
    payload[3]["amt"] = -5
    response = client.post("/v1/finance/score", json={"transactions": payload, "mapping": {"amount": "amt"}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["bad_rows"] == [{"row": 4, "reason": "negative amount"}]
    assert len(body["assessments"]) == 29
    assert {"risk_level", "numeric_score", "fused_score", "llm_level"} <= set(body["assessments"][0])
    assert all(0 <= a["risk_level"] <= 5 for a in body["assessments"])
    bad = client.post("/v1/finance/score", json={"transactions": payload, "mapping": {"amount": "price"}})
    assert bad.status_code == 422 and "price" in bad.json()["detail"]
    assert pd.isna(body["assessments"][0]["llm_level"])
