"""The hand-labelled labeler set (bench/assets/labeler_gold.jsonl) and its scoring (domains.medical.labeler_eval)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from core.errors import ValidationError
from domains.medical.labeler_eval import GoldSentence, load_gold, score_labels
from domains.medical.synthetic import STYLES, generate

GOLD = Path(__file__).resolve().parents[4] / "bench" / "assets" / "labeler_gold.jsonl"


def test_the_committed_set_is_valid_and_large_enough() -> None:
    gold = load_gold(GOLD)
    assert len(gold) >= 200
    assert {g.split for g in gold} == {"dev", "held_out"} and sum(g.split == "held_out" for g in gold) >= 40
    kinds = {g.kind for g in gold}
    assert {"negation", "list", "contrast", "hedge", "temporal", "device", "synonym", "mixed", "normal",
            "no_mention", "status_post", "pseudo"} <= kinds  # fmt: skip
    statuses = {s for g in gold for s in g.labels.values()}
    assert statuses == {"present", "uncertain", "absent"}
    assert any(not g.labels for g in gold)  # sentences that mention no finding


def test_no_sentence_is_one_the_generator_writes() -> None:
    """The set measures phrasing the templates do not produce: no gold sentence is a generated sentence or
    impression line."""
    generated: set[str] = set()
    for style in STYLES:
        for report in generate(300, hospital=style, seed=5):
            for line in re.split(r"(?<=[.])\s+|\n", report.text):
                generated.add(re.sub(r"^\s*(?:\d+\.|-)\s*", "", line).strip().lower())
    texts = {g.text.strip().lower() for g in load_gold(GOLD)}
    assert not texts & generated


def test_scores_count_triples_by_finding_and_status() -> None:
    gold = [
        GoldSentence("a", "negation", "No pneumothorax.", {"pneumothorax": "absent"}),
        GoldSentence("b", "hedge", "Possible edema.", {"edema": "uncertain"}),
        GoldSentence("c", "no_mention", "Clinical correlation.", {}),
    ]
    answers = {"No pneumothorax.": {"pneumothorax": "absent"}, "Possible edema.": {"edema": "present"},
               "Clinical correlation.": {"nodule": "present"}}  # fmt: skip
    scores = score_labels(gold, answers.__getitem__)
    assert scores["n_sentences"] == 3 and scores["exact_match"] == pytest.approx(1 / 3)
    # triples: tp (pneumothorax, absent); fp (edema, present), fn (edema, uncertain); fp (nodule, present)
    assert scores["micro"] == {"support": 2, "precision": pytest.approx(1 / 3), "recall": pytest.approx(1 / 2)}
    assert scores["by_status"]["present"] == {"support": 0, "precision": 0.0, "recall": 0.0}
    assert scores["by_status"]["uncertain"] == {"support": 1, "precision": 0.0, "recall": 0.0}
    assert scores["by_status"]["absent"] == {"support": 1, "precision": 1.0, "recall": 1.0}
    assert scores["by_finding"]["edema"] == {"support": 1, "precision": 0.0, "recall": 0.0}
    assert set(scores["by_finding"]) == {"edema", "pneumothorax", "nodule"}
    assert [d["id"] for d in scores["disagreements"]] == ["b", "c"]
    assert scores["by_kind"]["negation"] == {"n": 1, "exact_match": 1.0}


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"id": "x", "kind": "k", "text": "t", "labels": {"pneumo": "present"}}, "unknown finding"),
        ({"id": "x", "kind": "k", "text": "t", "labels": {"edema": "maybe"}}, "unknown finding or status"),
        ({"id": "x", "kind": "k", "labels": {}}, "expected {id, kind, text, labels}"),
    ],
)
def test_bad_lines_are_named(tmp_path: Path, row: dict, message: str) -> None:
    path = tmp_path / "gold.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(ValidationError, match=re.escape(f"{path}:1")) as err:
        load_gold(path)
    assert message in str(err.value)


def test_a_repeated_id_is_refused(tmp_path: Path) -> None:
    row = json.dumps({"id": "x", "kind": "k", "text": "t", "labels": {}})
    path = tmp_path / "gold.jsonl"
    path.write_text(row + "\n" + row + "\n")
    with pytest.raises(ValidationError, match="gold.jsonl:2: id x repeated"):
        load_gold(path)
