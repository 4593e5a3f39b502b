"""Merge LoRA adapters (``piip-llava train --lora_enable True``) into a full PIIP-LLaVA checkpoint.

The adapter folder is what a LoRA training run writes: ``adapter_config.json`` +
``adapter_model.safetensors`` (LoRA weights of the LLM, plus the full projector / vision tower weights
that trained alongside as ``modules_to_save``) and the tokenizer. The base checkpoint (the stage-1
output) is read from ``adapter_config.json``'s ``base_model_name_or_path`` unless ``--base`` is given.
The output is a normal checkpoint that ``chat``, ``eval``, ``serve`` and ``train`` accept.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--adapter", required=True, help="folder of the LoRA run (adapter_config.json, adapter_model.*)")
    parser.add_argument("--base", default=None, help="base PIIP-LLaVA checkpoint (default: the one the adapter records)")
    parser.add_argument("--output", required=True, help="folder for the merged checkpoint")
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"),
                        help="dtype to load and merge in (auto: the base checkpoint's)")
    parser.add_argument("--overwrite", action="store_true", help="write into --output even if it holds a checkpoint")


def run(args: argparse.Namespace) -> int:
    merged = merge_lora(args.adapter, args.output, base=args.base, dtype=args.dtype, overwrite=args.overwrite)
    print(f"merged {args.adapter} into {merged['base']} -> {args.output}")
    return 0


ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "tokenizer.model")


def _read_adapter_config(adapter: str) -> dict:
    import json
    import os

    from ..errors import ConfigError

    if not os.path.isdir(adapter):
        raise ConfigError(f"--adapter {adapter}: folder not found.")
    path = os.path.join(adapter, "adapter_config.json")
    if not os.path.isfile(path):
        hint = " It holds a full checkpoint (config.json), not LoRA adapters." if os.path.isfile(os.path.join(adapter, "config.json")) else ""
        raise ConfigError(f"--adapter {adapter}: no adapter_config.json (is this the output of a --lora_enable run?).{hint}")
    if not any(os.path.isfile(os.path.join(adapter, name)) for name in ADAPTER_WEIGHTS):
        raise ConfigError(f"--adapter {adapter}: adapter_config.json but no {' / '.join(ADAPTER_WEIGHTS)}.")
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: invalid JSON at line {error.lineno}: {error.msg}.") from error


def _resolve_base(adapter: str, recorded: str | None, base: str | None) -> str:
    import json
    import os

    from ..errors import ConfigError

    if base is None:
        if not recorded:
            raise ConfigError(f"--adapter {adapter}: adapter_config.json records no base_model_name_or_path; pass --base CHECKPOINT.")
        base = recorded
        if not os.path.isabs(base) and not os.path.isdir(base) and os.path.isdir(os.path.join(adapter, base)):
            base = os.path.join(adapter, base)
        where = f"the base recorded in {adapter}/adapter_config.json"
    else:
        where = "--base"
    if not os.path.isdir(base):
        raise ConfigError(f"{where} {base}: folder not found; pass --base CHECKPOINT (the stage-1 output the adapters were trained on).")
    config_path = os.path.join(base, "config.json")
    if not os.path.isfile(config_path):
        raise ConfigError(f"{where} {base}: no config.json (not a PIIP-LLaVA checkpoint).")
    with open(config_path, encoding="utf-8") as handle:
        model_type = json.load(handle).get("model_type")
    if model_type != "piip_llava":
        raise ConfigError(f"{where} {base}: model_type {model_type!r}, expected 'piip_llava' (convert official releases first).")
    return base


def _load_adapter_weights(peft_model, state: dict, adapter: str, base: str) -> None:
    """Put the adapter's tensors into the wrapped base; any shape or key mismatch is a clear error."""
    from peft.utils import set_peft_model_state_dict

    from ..errors import ConfigError

    hint = "Pass --base with the checkpoint the adapters were trained on."
    try:
        result = set_peft_model_state_dict(peft_model, state)
    except RuntimeError as error:  # load_state_dict: "size mismatch for KEY: copying a param with shape ..."
        lines = [line.strip().rstrip(".") for line in str(error).splitlines() if "size mismatch" in line]
        if not lines:
            raise
        more = f" (+{len(lines) - 2} more)" if len(lines) > 2 else ""
        raise ConfigError(f"--adapter {adapter} does not fit base {base}: {'; '.join(lines[:2])}{more}. {hint}") from error
    except KeyError as error:  # a modules_to_save wrapper found no saved weights
        raise ConfigError(f"--adapter {adapter} does not fit base {base}: no saved weights for {error}. {hint}") from error
    unexpected = list(result.unexpected_keys)
    missing = [key for key in result.missing_keys if ".lora_" in key or ".modules_to_save." in key]
    if unexpected or missing:
        detail = [f"unused adapter weight {k}" for k in unexpected[:2]] + [f"no adapter weight for {k}" for k in missing[:2]]
        raise ConfigError(f"--adapter {adapter} does not fit base {base}: {'; '.join(detail)}. {hint}")


def merge_lora(adapter: str, output: str, *, base: str | None = None, dtype: str = "auto", overwrite: bool = False) -> dict:
    """Load ``base`` (+ the adapter), merge, save a full checkpoint + tokenizer to ``output``. Returns a summary."""
    import os

    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from peft.utils import load_peft_weights

    from ..data.tokenizer import load_tokenizer
    from ..errors import ConfigError
    from ..model import PiipLlavaForConditionalGeneration

    adapter = os.fspath(adapter)
    output = os.fspath(output)
    config = _read_adapter_config(adapter)
    if config.get("peft_type", "LORA") != "LORA":
        raise ConfigError(f"--adapter {adapter}: peft_type {config.get('peft_type')!r}; only LoRA adapters can be merged.")
    base = _resolve_base(adapter, config.get("base_model_name_or_path"), base)
    if os.path.abspath(output) in (os.path.abspath(adapter), os.path.abspath(base)):
        raise ConfigError(f"--output {output} is the adapter or base folder; choose a new folder.")
    if os.path.isfile(os.path.join(output, "config.json")) and not overwrite:
        raise ConfigError(f"--output {output} already holds a checkpoint; pass --overwrite or choose a new folder.")

    has_tokenizer = any(os.path.isfile(os.path.join(adapter, name)) for name in TOKENIZER_FILES)
    loaded = load_tokenizer(adapter if has_tokenizer else base)
    torch_dtype = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    model = PiipLlavaForConditionalGeneration.from_pretrained(base, dtype=torch_dtype)
    if loaded.image_token_id != model.config.image_token_id or loaded.vocab_size > model.get_input_embeddings().num_embeddings:
        raise ConfigError(
            f"tokenizer of {adapter if has_tokenizer else base} (<image> id {loaded.image_token_id}, {loaded.vocab_size} tokens) "
            f"does not match base {base} (<image> id {model.config.image_token_id}, "
            f"{model.get_input_embeddings().num_embeddings} embeddings)."
        )

    lora_config = LoraConfig.from_pretrained(adapter)
    lora_config.inference_mode = True
    lora_config.base_model_name_or_path = None  # the base was resolved above; keeps peft from warning about a rename
    state = load_peft_weights(adapter, device="cpu")
    peft_model = get_peft_model(model, lora_config)
    _load_adapter_weights(peft_model, state, adapter, base)
    assert isinstance(peft_model, PeftModel)
    merged = peft_model.merge_and_unload()
    merged.eval()
    # The merged model is a plain checkpoint of the base: forget the adapter's bookkeeping.
    merged.name_or_path = output
    merged.config._name_or_path = output
    os.makedirs(output, exist_ok=True)
    merged.save_pretrained(output)
    loaded.save_pretrained(output)  # LLaVA-exact tokenizer (SentencePiece model + legacy flag), not the raw HF save
    return {"base": base, "adapter": adapter, "output": output,
            "lora_modules": sum(1 for k in state if ".lora_A." in k),
            "modules_to_save": sorted(lora_config.modules_to_save or [])}
