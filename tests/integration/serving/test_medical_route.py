"""POST /v1/medical/draft on the real model server: drafts through its ServingState, stored when asked."""

from __future__ import annotations

import httpx

from domains.medical.synthetic import generate


def test_medical_draft_through_the_served_model(server) -> None:  # type: ignore[no-untyped-def]
    studies = [{"report_id": r.report_id, "text": r.text} for r in generate(3, hospital="northgate", seed=2)]
    body = {"studies": studies, "hospital": "northgate", "model": "tiny"}
    url = f"{server.url}/v1/medical/draft"
    assert httpx.post(url, json=body, timeout=60).status_code == 401  # behind the API keys
    response = httpx.post(url, json=body, headers=server.headers, timeout=120)
    assert response.status_code == 200, response.text
    drafts = response.json()["drafts"]
    assert [d["study"] for d in drafts] == [s["report_id"] for s in studies]
    assert all(d["latency_ms"] > 0 and isinstance(d["labels"], dict) and d["draft_id"] is None for d in drafts)
    missing = httpx.post(url, json={**body, "model": None}, headers=server.headers, timeout=60)
    assert missing.status_code == 404 and "medical-northgate" in missing.json()["error"]["message"]
    bad = {**body, "studies": [{"report_id": "x", "impression": "only"}, {}, studies[0]]}
    mixed = httpx.post(url, json=bad, headers=server.headers, timeout=120)
    assert mixed.status_code == 200, mixed.text
    assert [d["study"] for d in mixed.json()["drafts"]] == [studies[0]["report_id"]]  # the good one is drafted
    rejected = mixed.json()["bad_rows"]
    assert [(b["row"], b["study"]) for b in rejected] == [(0, "x"), (1, None)]
    assert "no findings" in rejected[0]["reason"] and "neither `text` nor any section" in rejected[1]["reason"]
    unnamed = httpx.post(url, json={**body, "store": True}, headers=server.headers, timeout=60)
    assert unnamed.status_code == 422 and "as_user" in unnamed.json()["error"]["message"]
