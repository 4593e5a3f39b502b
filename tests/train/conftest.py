"""Fixtures for the training tests: a tiny LLM folder, tiny LLaVA-format data, and ways to run a training.

Everything is built by the tests themselves in seconds (random weights, random PNGs); nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOKENIZER = REPO / "tests" / "fixtures" / "tokenization" / "tokenizer"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_tiny_llm(directory: Path, hidden_size: int = 64, num_layers: int = 2) -> Path:
    """A 2-layer random ``LlamaForCausalLM`` saved with the Vicuna test tokenizer (what ``--llm`` expects)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=hidden_size, intermediate_size=2 * hidden_size, num_hidden_layers=num_layers, num_attention_heads=4,
        num_key_value_heads=4, vocab_size=32000, max_position_embeddings=2048, bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    for item in TOKENIZER.iterdir():
        shutil.copy(item, directory / item.name)
    return directory


def write_tiny_data(directory: Path, num_images: int = 4) -> dict[str, Path]:
    """Random PNGs (odd sizes, so padding runs), stage-1 captions (.json) and stage-2 conversations (.jsonl)."""
    import numpy as np
    from PIL import Image

    images = directory / "images"
    (images / "sub").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = []
    for i in range(num_images):
        name = f"sub/img{i}.png" if i % 2 else f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (40 + 12 * i, 56 - 4 * i, 3), dtype=np.uint8)).save(images / name)
        names.append(name)
    captions = [
        {"id": f"cap{i}", "image": names[i % num_images],
         "conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": f"a noisy picture number {i} with {i + 2} colours"}]}
        for i in range(8)
    ]
    pretrain = directory / "pretrain.json"
    pretrain.write_text(json.dumps(captions, indent=1))
    conversations = []
    for i in range(6):
        conversations.append({
            "id": f"conv{i}", "image": names[i % num_images],
            "conversations": [
                {"from": "human", "value": "<image>\nWhat is in the image?" if i % 2 else "What colour dominates?\n<image>"},
                {"from": "gpt", "value": f"Mostly noise, sample {i}."},
                {"from": "human", "value": "Anything else?"},
                {"from": "gpt", "value": "No." + " More words." * i},
            ],
        })
    for i in range(2):
        conversations.append({
            "id": f"text{i}",
            "conversations": [
                {"from": "human", "value": f"Say something about the number {i}."},
                {"from": "gpt", "value": f"The number {i} is small."},
                {"from": "human", "value": "Why?"},
                {"from": "gpt", "value": "Because it is less than ten."},
            ],
        })
    finetune = directory / "finetune.jsonl"
    finetune.write_text("\n".join(json.dumps(record) for record in conversations) + "\n")
    return {"images": images, "pretrain": pretrain, "finetune": finetune}


@pytest.fixture(autouse=True)
def _one_thread():
    """The tiny models are far faster on one thread: on a shared 2-core machine, intra-op threads that spin
    while another process holds the other core make a tiny step ~100x slower. Subprocesses get OMP_NUM_THREADS=1."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tokenizer_dir() -> Path:
    return TOKENIZER


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory) -> Path:
    return write_tiny_llm(tmp_path_factory.mktemp("tiny_llm"))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> dict[str, Path]:
    return write_tiny_data(tmp_path_factory.mktemp("tiny_data"))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A tiny random PIIP-LLaVA checkpoint (tiny-piip-vit tower, 2-layer LLaMA) -- a stand-in stage-1 output."""
    from piip_llava.testing import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny_ckpt") / "ckpt", TOKENIZER)


COMMON = ["--use_cpu", "True", "--report_to", "none", "--dataloader_num_workers", "0", "--seed", "0",
          "--logging_steps", "1", "--disable_tqdm", "True"]


def train_in_process(argv: list[str]):
    """Parse ``argv`` exactly as ``python -m piip_llava.train`` does and run ``train`` here (returns TrainResult)."""
    from transformers import HfArgumentParser

    from piip_llava.train.arguments import (
        DataArguments,
        ModelArguments,
        PiipTrainingArguments,
    )
    from piip_llava.train.run import train

    parser = HfArgumentParser((ModelArguments, DataArguments, PiipTrainingArguments))
    model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=[*argv, *COMMON])
    return train(model_args, data_args, training_args)


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = "1"
    env["DS_ACCELERATOR"] = "cpu"
    env["TOKENIZERS_PARALLELISM"] = "false"
    env["HF_HUB_OFFLINE"] = "1"
    env.update(extra)
    return env


def run_entry(argv: list[str], *, nproc: int = 0, timeout: float = 300, common: bool = True) -> subprocess.CompletedProcess:
    """``python -m piip_llava.train ARGS`` (``nproc`` > 0: under ``torchrun --nproc_per_node nproc``)."""
    if nproc:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
                    "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "piip_llava.train"]
    else:
        launcher = [sys.executable, "-m", "piip_llava.train"]
    return subprocess.run([*launcher, *argv, *(COMMON if common else [])], capture_output=True, text=True, check=False,
                          timeout=timeout, env=subprocess_env(), cwd=REPO)


def check_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\n--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-8000:]}"
