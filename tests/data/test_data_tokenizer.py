"""load_tokenizer and the slow-tokenizer-exact SentencePiece encoder."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest

from piip_llava.data.tokenizer import (
    HFTextEncoder,
    SentencePieceLlamaEncoder,
    choose_encoding,
    load_tokenizer,
)


def test_vicuna_setup(vicuna):
    assert isinstance(vicuna.encoder, SentencePieceLlamaEncoder)
    assert vicuna.encoder.legacy is False and vicuna.encoder.llava_exact
    assert vicuna.encoder.bos_ids == (1,)
    assert vicuna.pad_token_id == 0  # LLaVA: pad = unk
    assert vicuna.image_token_id == 32000 and vicuna.vocab_size == 32001
    assert vicuna.tokenizer.convert_ids_to_tokens(vicuna.image_token_id) == "<image>"
    assert vicuna.tokenizer.padding_side == "right" and vicuna.tokenizer.model_max_length == 2048


def test_every_reference_string(vicuna, golden):
    """``tokenizer(text).input_ids`` of LLaVA's slow tokenizer on the 43 tricky strings."""
    for case in golden("tokenizer_strings.jsonl"):
        assert [*vicuna.encoder.bos_ids, *vicuna.encoder.encode(case["text"])] == case["input_ids"], case["text"]


def test_strings_where_transformers5_differs(vicuna, golden, fixture_dir):
    """The released checkpoints learnt the slow ids; transformers 5's own LlamaTokenizer gives others here."""
    reference = {case["text"]: case["input_ids"] for case in golden("tokenizer_strings.jsonl")}
    differences = json.loads((fixture_dir / "transformers5_differences.json").read_text())
    entries = differences["files"]["tokenizer_strings.jsonl"]
    assert " Hello world" in [entry["key"] for entry in entries]
    for entry in entries:
        ours = [1, *vicuna.encoder.encode(entry["key"])]
        assert ours == reference[entry["key"]]
        assert ours != entry["input_ids_transformers5"]


def test_continuation_after_special_has_no_dummy_prefix(vicuna):
    encoder = vicuna.encoder
    assert encoder.encode("USER") == [3148, 1001]  # '▁US', 'ER'
    assert encoder.encode_continuation("USER") == [11889]  # 'USER' (as after '</s>')
    assert encoder.encode_continuation(" answer") == encoder.encode("answer")


def test_image_token_text_maps_to_its_id(vicuna):
    assert vicuna.encoder.encode("a<image>b")[1] == vicuna.image_token_id


def test_encoder_pickles(vicuna):
    clone = pickle.loads(pickle.dumps(vicuna.encoder))
    assert clone.encode("  Hello  world") == vicuna.encoder.encode("  Hello  world")


def test_choice_is_made_from_files_and_class(fixture_dir, tmp_path, vicuna):
    assert choose_encoding(str(fixture_dir / "tokenizer"), vicuna.tokenizer)[0] == "sentencepiece"
    # A folder *named* like Vicuna that holds a byte-level BPE tokenizer is not treated as one.
    assert choose_encoding(str(tmp_path), object())[0] == "hf"


def test_legacy_default_follows_slow_tokenizer(fixture_dir, tmp_path):
    folder = tmp_path / "vicuna-7b-legacy"
    shutil.copytree(fixture_dir / "tokenizer", folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    del config["legacy"]
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    loaded = load_tokenizer(folder)
    assert loaded.encoder.legacy is True
    assert loaded.encoder.encode("</s>USER") == [2, 3148, 1001]  # legacy: dummy prefix after a special token


def test_forced_hf_encoding(fixture_dir):
    loaded = load_tokenizer(fixture_dir / "tokenizer", encoding="hf")
    assert isinstance(loaded.encoder, HFTextEncoder) and not loaded.encoder.llava_exact
    assert loaded.encoder.bos_ids == (1,)


def test_bad_encoding_name(fixture_dir):
    with pytest.raises(ValueError, match="encoding"):
        load_tokenizer(fixture_dir / "tokenizer", encoding="slow")  # type: ignore[arg-type]


def test_byte_level_tokenizer_uses_hf_and_keeps_pad(chatml_tokenizer_dir, llama3_tokenizer_dir):
    chatml = load_tokenizer(chatml_tokenizer_dir)
    assert isinstance(chatml.encoder, HFTextEncoder)
    assert chatml.encoder.bos_ids == ()
    assert chatml.tokenizer.pad_token == "<|endoftext|>"
    assert chatml.tokenizer.convert_ids_to_tokens(chatml.image_token_id) == "<image>"
    llama3 = load_tokenizer(llama3_tokenizer_dir)
    assert llama3.encoder.bos_ids == (llama3.tokenizer.convert_tokens_to_ids("<|begin_of_text|>"),)


def test_pad_falls_back_to_eos_without_unk(tmp_path, chatml_tokenizer_dir):
    folder = tmp_path / "nopad"
    shutil.copytree(chatml_tokenizer_dir, folder)
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["pad_token"] = None
    config_path.write_text(json.dumps(config))
    special_map = folder / "special_tokens_map.json"
    if special_map.exists():
        data = json.loads(special_map.read_text())
        data.pop("pad_token", None)
        special_map.write_text(json.dumps(data))
    loaded = load_tokenizer(folder)
    assert loaded.tokenizer.pad_token == loaded.tokenizer.eos_token == "<|im_end|>"


def test_save_and_reload_keeps_llava_ids(vicuna, tmp_path, golden):
    """transformers 5 alone would save tokenizer.json only and reload with its own (different) ids."""
    vicuna.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "tokenizer.model").exists()
    again = load_tokenizer(tmp_path / "saved")
    assert isinstance(again.encoder, SentencePieceLlamaEncoder) and again.encoder.legacy is False
    assert (again.image_token_id, again.pad_token_id, again.vocab_size) == (32000, 0, 32001)
    for case in golden("tokenizer_strings.jsonl"):
        assert [*again.encoder.bos_ids, *again.encoder.encode(case["text"])] == case["input_ids"]


def test_save_hf_encoder_tokenizer(chatml_tokenizer_dir, tmp_path):
    loaded = load_tokenizer(chatml_tokenizer_dir)
    loaded.save_pretrained(tmp_path / "saved")
    again = load_tokenizer(tmp_path / "saved")
    assert again.image_token_id == loaded.image_token_id and again.encoder.encode("a b") == loaded.encoder.encode("a b")
