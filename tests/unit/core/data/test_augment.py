"""Augmentation: knowledge-graph substitution keeps labels in step and re-passes the filter; back-translation runs
the real seq2seq path on a tiny random Marian model built in-process; a missing translator is one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.data.augment import AugmentOptions, clean_translation, run_augment
from core.data.records import parse_record
from core.errors import ValidationError
from domains.finance.data_checks import DATA_CHECKS as FINANCE
from domains.medical.data_checks import DATA_CHECKS as MEDICAL


@pytest.fixture(scope="module")
def finance_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from domains.finance.synthetic import generate
    from domains.finance.training import training_records, write_jsonl

    frame = generate(6, seed=5, days=10)
    records = training_records(frame, frame["is_fraud"].to_numpy())[:12]
    return write_jsonl(records, tmp_path_factory.mktemp("aug") / "clean.jsonl")


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_kg_substitute_finance_keeps_labels_and_is_idempotent(finance_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "aug.jsonl"
    options = AugmentOptions(method="kg-substitute", per_record=1)
    result = run_augment(
        finance_file, out, tmp_path / "r.json", checks=FINANCE, domain="finance", options=options, translate=None
    )
    rows = lines(out)
    variants = [r for r in rows if "augmented_from" in r["meta"]]
    assert result.originals == 12 and result.generated == 12 and len(variants) == result.kept == 12
    originals = lines(finance_file)
    for v in variants:
        aug = v["meta"]["augmentation"]
        original = originals[v["meta"]["augmented_from"]["line"] - 1]
        assert aug["method"] == "kg-substitute" and aug["replaced"] != aug["by"]
        assert v["messages"][-1]["content"] == original["messages"][-1]["content"]  # the label is unchanged
        assert v["messages"][-2]["content"] != original["messages"][-2]["content"]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["variants_generated"] == 12 and all(t["passed"] + t["dropped"] == t["input"] for t in report["tiers"])
    first = out.read_bytes()
    run_augment(
        finance_file, out, tmp_path / "r.json", checks=FINANCE, domain="finance", options=options, translate=None
    )
    assert out.read_bytes() == first


def test_kg_substitute_medical_replaces_in_findings_and_impression(tmp_path: Path) -> None:
    src = tmp_path / "med.jsonl"
    record = {
        "messages": [
            {
                "role": "user",
                "content": "FINDINGS: Small right pleural effusion. No pneumothorax.\nWrite the impression.",
            },
            {"role": "assistant", "content": "Small right pleural effusion."},
        ]
    }
    src.write_text(json.dumps(record) + "\n", encoding="utf-8")
    out = tmp_path / "aug.jsonl"
    result = run_augment(
        src,
        out,
        tmp_path / "r.json",
        checks=MEDICAL,
        domain="medical",
        options=AugmentOptions(method="kg-substitute", per_record=2, languages=("en",)),
        translate=None,
    )
    assert result.generated >= 1
    for v in [r for r in lines(out) if "augmented_from" in r.get("meta", {})]:
        aug = v["meta"]["augmentation"]
        assert aug["source"] == "radiology-semantic-dict"
        user, answer = v["messages"][0]["content"].lower(), v["messages"][1]["content"].lower()
        if aug["replaced"] in record["messages"][1]["content"].lower():
            assert aug["by"].lower() in user and aug["by"].lower() in answer  # both sides changed together
    rejected = lines(tmp_path / "augment-rejected.jsonl")
    assert result.kept + len(rejected) == result.generated


def tiny_marian(folder: Path) -> Path:
    """A random 1-layer MarianMT model with a byte-level BPE tokenizer trained on the spot (no download)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import MarianConfig, MarianMTModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<pad>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(["grocery purchase online order transfer to savings 交易 转账"] * 4, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    config = MarianConfig(
        vocab_size=len(fast),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=300,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
        forced_eos_token_id=1,
    )
    torch.manual_seed(0)
    MarianMTModel(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def test_backtranslate_round_trip_through_a_tiny_marian(finance_file: Path, tmp_path: Path) -> None:
    from core.data.translate import Seq2SeqTranslator

    forward = tiny_marian(tmp_path / "zh-en")
    options = AugmentOptions(
        method="backtranslate", translator=str(forward), back_translator=str(forward), max_new_tokens=16
    )
    translate = options.translator_or_error()
    assert isinstance(translate, Seq2SeqTranslator)
    small = tmp_path / "four.jsonl"
    small.write_text("".join(finance_file.read_text(encoding="utf-8").splitlines(keepends=True)[:4]), encoding="utf-8")
    out = tmp_path / "aug.jsonl"
    result = run_augment(
        small, out, tmp_path / "r.json", checks=FINANCE, domain="finance", options=options, translate=translate
    )
    originals = [parse_record(o) for o in lines(small)]
    assert result.originals == 4 and result.generated >= 1
    variants = [r for r in lines(out) if "augmented_from" in r["meta"]]
    rejected = lines(tmp_path / "augment-rejected.jsonl")
    assert len(variants) + len(rejected) == result.generated
    for obj in variants + [r["record"] for r in rejected if "record" in r]:
        original = originals[obj["meta"]["augmented_from"]["line"] - 1]
        (span,) = FINANCE.free_text(original)
        text = original.messages[span.message].content[span.start : span.end]
        expected = clean_translation(translate(translate([text], "zh", "en"), "en", "zh")[0])
        assert obj["meta"]["augmentation"] == {"method": "backtranslate", "pivot": "en"}
        assert expected and expected in obj["messages"][span.message]["content"]
        assert obj["messages"][-1]["content"] == original.answer


def test_backtranslate_without_a_translator_says_so() -> None:
    with pytest.raises(ValidationError, match="back-translation needs a translator"):
        AugmentOptions(method="backtranslate").translator_or_error()
    with pytest.raises(ValidationError, match="--method"):
        AugmentOptions(method="mixup").translator_or_error()


def test_causal_translator_runs_the_chat_prompt(tiny_model_dir: Path) -> None:
    from core.data.translate import CausalTranslator

    translate = CausalTranslator(str(tiny_model_dir), max_new_tokens=4)
    out = translate(["grocery purchase", "online order"], "zh", "en")
    assert len(out) == 2 and all(isinstance(t, str) for t in out)
    assert out == translate(["grocery purchase", "online order"], "zh", "en")  # greedy: same input, same output
