"""Stage 1's record mix: explicit, seeded, in the drafting prompt's format, and free of the styles left out."""

from __future__ import annotations

from collections import Counter

import pytest

from core.errors import ValidationError
from domains.medical.ingest import report_from_text
from domains.medical.labeler import label_report
from domains.medical.prompts import SYSTEM
from domains.medical.synthetic import HOSPITALS, PUBLIC_STYLES, STYLES, generate
from domains.medical.training import GENERAL_CORPUS, Stage1Mix, general_corpus_records, stage1_records


def _sources(records: list[dict]) -> Counter[str]:
    return Counter(r["meta"]["source"] for r in records)


def test_the_mix_is_explicit_and_its_counts_are_what_it_says() -> None:
    mix = Stage1Mix(reports=30, per_source=5, seed=3).excluding("st_marys", "lakeside")
    assert mix.styles == ("northgate", "riverside", *PUBLIC_STYLES)
    assert mix.as_dict() == {"reports": 30, "styles": ["northgate", "riverside", *PUBLIC_STYLES], "per_source": 5,
                             "seed": 3}  # fmt: skip
    counts = _sources(stage1_records(mix))
    corpus = {k: v for k, v in counts.items() if k.startswith(GENERAL_CORPUS)}
    assert corpus == {"general-corpus:northgate": 8, "general-corpus:riverside": 8,
                      "general-corpus:public_archive": 7, "general-corpus:public_teaching": 7}  # fmt: skip
    vocabulary = {k: v for k, v in counts.items() if not k.startswith(GENERAL_CORPUS)}
    assert vocabulary and all(v <= 5 for v in vocabulary.values())


def test_the_mix_is_seeded() -> None:
    mix = Stage1Mix(reports=12, per_source=4, seed=1)
    assert stage1_records(mix) == stage1_records(mix)
    assert stage1_records(mix) != stage1_records(Stage1Mix(reports=12, per_source=4, seed=2))


def test_corpus_records_are_drafting_prompts_of_the_styles_kept() -> None:
    records = general_corpus_records(8, styles=("northgate", "public_archive"), seed=0)
    assert len(records) == 8
    for r in records:
        system, user, answer = r["messages"]
        assert system == {"role": "system", "content": SYSTEM}  # the drafting prompt (prompts.build_messages)
        assert user["content"].startswith(("INDICATION:", "FINDINGS:")) and user["content"].endswith("IMPRESSION:")
        assert answer["role"] == "assistant" and answer["content"]
        assert r["meta"]["stage"] == 1 and r["meta"]["source"] in {"general-corpus:northgate",
                                                                     "general-corpus:public_archive"}  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"styles": ("nowhere",)}, "unknown report style(s) nowhere"),
        ({"reports": -1}, "must be 0 or more"),
        ({"reports": 5, "styles": ()}, "every style is left out"),
    ],
)
def test_a_bad_mix_is_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Stage1Mix(**kwargs)


def test_leaving_every_style_out_is_refused_unless_no_reports_are_asked_for() -> None:
    with pytest.raises(ValidationError, match="every style is left out"):
        Stage1Mix(reports=10).excluding(*STYLES)
    assert Stage1Mix(reports=0).excluding(*STYLES).styles == ()
    with pytest.raises(ValidationError, match="unknown report style"):
        Stage1Mix().excluding("st_mary")


@pytest.mark.parametrize("style", PUBLIC_STYLES)
def test_public_styles_parse_and_their_impressions_agree_with_the_findings(style: str) -> None:
    assert style not in HOSPITALS
    for synthetic in generate(40, hospital=style, seed=4):
        report = report_from_text(synthetic.text, report_id=synthetic.report_id)
        assert report.trainable and not report.problems, synthetic.text
        positives = {f for f, s in synthetic.truth.items() if s == "present"} - {"lung_opacity", "no_finding"}
        stated = {f for f, s in label_report(report.impression).items() if s == "present"}
        assert positives <= stated | {"lung_opacity"}, (report.impression, synthetic.truth)
