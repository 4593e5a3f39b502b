"""Shared fixtures for the data-layer tests: LLaVA golden files, the Vicuna tokenizer, tiny BPE tokenizers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tokenization"


def read_jsonl(name: str) -> list[dict]:
    with open(FIXTURES / name, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def golden():
    """``golden("expected_v1.jsonl")`` -> the file's records."""
    return read_jsonl


@pytest.fixture(scope="session")
def records() -> dict[str, dict]:
    with open(FIXTURES / "conversations.json", encoding="utf-8") as handle:
        return {record["id"]: record for record in json.load(handle)}


@pytest.fixture(scope="session")
def vicuna():
    """The Vicuna tokenizer as LLaVA loaded it (pad = unk = 0), plus ``<image>`` (id 32000)."""
    from piip_llava.data.tokenizer import load_tokenizer

    return load_tokenizer(FIXTURES / "tokenizer", model_max_length=2048, padding_side="right")


def _train_bpe(directory: Path, specials: list[str], *, bos: str | None, eos: str, pad: str) -> Path:
    """A tiny byte-level BPE tokenizer (Qwen/Llama-3 style: no dummy prefix), saved as a HF tokenizer folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [
        "You are a helpful assistant. What is shown in the image? A red bus on a street.",
        "The capital of France is Paris. How many people are in the picture? There are three.",
        "user assistant system image answer question photo dog cat 1234567890 !?.,:;",
    ] * 20
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(corpus, trainer)
    if bos is not None:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tokenizer.token_to_id(bos))]
        )
    hf = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=eos, pad_token=pad, bos_token=bos)
    hf.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def chatml_tokenizer_dir(tmp_path_factory) -> Path:
    return _train_bpe(
        tmp_path_factory.mktemp("chatml_tok"),
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        bos=None,
        eos="<|im_end|>",
        pad="<|endoftext|>",
    )


@pytest.fixture(scope="session")
def llama3_tokenizer_dir(tmp_path_factory) -> Path:
    return _train_bpe(
        tmp_path_factory.mktemp("llama3_tok"),
        ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        bos="<|begin_of_text|>",
        eos="<|eot_id|>",
        pad="<|end_of_text|>",
    )


class TinyImageProcessor:
    """Stand-in for ``PiipImageProcessor`` (same call signature), 8x8 output, records the aspect modes it saw."""

    image_size = 8

    def __init__(self) -> None:
        self.modes: list[str] = []

    def __call__(self, images, aspect_mode: str = "pad") -> torch.Tensor:
        self.modes.append(aspect_mode)
        if not isinstance(images, (list, tuple)):
            images = [images]
        out = []
        for image in images:
            array = np.asarray(image.convert("RGB").resize((8, 8)), dtype=np.float32) / 255.0
            out.append(torch.from_numpy(array).permute(2, 0, 1).contiguous())
        return torch.stack(out)


@pytest.fixture
def tiny_processor() -> TinyImageProcessor:
    return TinyImageProcessor()
