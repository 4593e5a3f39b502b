"""Tiny, real-format checkpoints for tests and examples (random weights, seconds to build).

``make_tiny_checkpoint`` writes what ``piip-llava train`` writes -- config.json, safetensors and a
tokenizer with ``<image>`` -- around a 2-layer LLaMA, so every front end (eval, chat, demo, serve) can
be exercised end to end without downloading a model.
"""

from __future__ import annotations

from pathlib import Path

import torch


def make_tiny_checkpoint(
    directory: str | Path,
    tokenizer_dir: str | Path,
    *,
    architecture: str = "tiny-piip-vit",
    template: str = "vicuna_v1",
    hidden_size: int = 64,
    num_layers: int = 2,
    seed: int = 0,
) -> Path:
    from transformers import LlamaConfig

    from .data.tokenizer import load_tokenizer
    from .model import PiipLlavaConfig, PiipLlavaForConditionalGeneration

    torch.manual_seed(seed)
    loaded = load_tokenizer(tokenizer_dir)
    text = LlamaConfig(
        hidden_size=hidden_size, intermediate_size=2 * hidden_size, num_hidden_layers=num_layers, num_attention_heads=4,
        num_key_value_heads=4, vocab_size=loaded.vocab_size, max_position_embeddings=2048,
        pad_token_id=loaded.pad_token_id, eos_token_id=loaded.eos_token_id,
    )
    config = PiipLlavaConfig.from_architecture(architecture, text, image_token_id=loaded.image_token_id, conversation_template=template)
    model = PiipLlavaForConditionalGeneration(config).eval()
    directory = Path(directory)
    model.save_pretrained(directory)
    loaded.save_pretrained(directory)
    return directory
