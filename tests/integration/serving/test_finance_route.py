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


def _request_total(server, model: str) -> float:  # type: ignore[no-untyped-def]
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{server.url}/metrics", headers=server.headers, timeout=10).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "finmed:request_success_total" and s.labels.get("model_name") == model
    )


def test_finance_route_shows_in_the_serving_metrics(server) -> None:  # type: ignore[no-untyped-def]
    frame = generate(30, seed=3, days=10, fraud_rate=0.3)
    model = NumericModel.fit(compute_features(frame), frame["is_fraud"].to_numpy(), max_iter=5)
    model.save(get_settings().data_dir / "finance" / "numeric.joblib")
    rows = frame.drop(columns=["is_fraud", "scheme"]).head(20)
    rows["timestamp"] = rows["timestamp"].astype(str)
    before = _request_total(server, "tiny-solo")
    body = {"transactions": rows.to_dict("records"), "llm_budget": 2, "model": "tiny-solo"}
    response = httpx.post(f"{server.url}/v1/finance/score", json=body, headers=server.headers, timeout=120)
    assert response.status_code == 200, response.text
    assert _request_total(server, "tiny-solo") >= before + 2  # the adjudications went through the batcher


def test_finance_cascade_answers_parse_at_int4_and_count_in_the_metrics(tiny_genai_dir) -> None:  # type: ignore[no-untyped-def]
    """The tiny random model cannot write the risk format by itself; decoded under parser.answer_regex it always
    does, and every answer of the cascade is a request of the in-process ServingState."""
    from core.serving.state import ServingState
    from domains.finance.llm import OnnxLLM
    from domains.finance.parser import parse_risk
    from domains.finance.pipeline import CascadePolicy, score_frame

    state = ServingState.in_process({"risk": tiny_genai_dir})
    try:
        llm = OnnxLLM(tiny_genai_dir, serving=state, model="risk")
        free = OnnxLLM(tiny_genai_dir, serving=state, model="risk", constrained=False)
        frame = generate(40, seed=4, days=10, fraud_rate=0.3)
        numeric = NumericModel.fit(compute_features(frame), frame["is_fraud"].to_numpy(), max_iter=5)
        rows = frame.drop(columns=["is_fraud", "scheme"])
        scored = score_frame(rows, numeric, llm=llm, policy=CascadePolicy(budget=8, k_examples=0))
        answers = scored.loc[scored["adjudicated"], "llm_answer"].tolist()
        assert len(answers) == 8 and all(parse_risk(a).ok for a in answers), answers
        done = state.metrics.requests.labels("risk", "stop")._value.get()
        assert done >= 8
        unconstrained = score_frame(rows, numeric, llm=free, policy=CascadePolicy(budget=8, k_examples=0))
        assert not all(parse_risk(a).ok for a in unconstrained.loc[unconstrained["adjudicated"], "llm_answer"])
    finally:
        state.close()


def test_more_in_process_prompts_than_the_queue_holds_wait_their_turn(tiny_genai_dir) -> None:  # type: ignore[no-untyped-def]
    """A cascade budget larger than max_queue (bench/finance.py's 120 against 64) once failed with QueueFull."""
    from core.serving.state import ServingState

    state = ServingState.in_process({"risk": tiny_genai_dir}, max_queue=4)
    try:
        done = state.generate_many_blocking("risk", [f"case {i}" for i in range(10)], {"max_tokens": 2})
        assert len(done) == 10 and all(r.prompt_ids is not None for r in done)
    finally:
        state.close()
