"""Loading a model for inference and generating answers: shared by eval, chat, demo and the HTTP API.

``load_pretrained_model`` decides the checkpoint format from ``config.json``'s ``model_type``
(``piip_llava`` = ours; ``llava_llama`` / ``llava`` = official releases, converted on the fly).
``Generator`` turns (prompt, images) pairs into left-padded batches and decodes answers, cut at the
template's stop string -- the one code path every front end uses, so they cannot drift apart.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import torch

from .constants import IMAGE_PLACEHOLDER
from .errors import ConfigError


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    """A :class:`~piip_llava.data.tokenizer.LoadedTokenizer`."""
    processor: Any
    template: Any
    name: str


def resolve_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: no CUDA GPU is visible; use --device cpu.")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("--device mps: Metal is not available on this machine; use --device cpu.")
    return torch.device(device)


def load_pretrained_model(
    path: str,
    *,
    device: str | None = None,
    dtype: torch.dtype | str | None = None,
    template: str | None = None,
    attn_implementation: str | None = None,
    vision_tower_path: str | None = None,
    load_4bit: bool = False,
    load_8bit: bool = False,
) -> LoadedModel:
    """Load a PIIP-LLaVA checkpoint (ours or an official release) ready for generation."""
    from pathlib import Path

    from .data.templates import get_template
    from .data.tokenizer import load_tokenizer
    from .model import PiipLlavaForConditionalGeneration
    from .model.checkpoints import OFFICIAL_MODEL_TYPES, CheckpointError, load_official, read_config

    target = resolve_device(device)
    if isinstance(dtype, str):
        dtype = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    if dtype is None:
        dtype = torch.float16 if target.type in ("cuda", "mps") else torch.float32
    config = read_config(path)
    model_type = config.get("model_type")
    quantization = None
    if load_4bit or load_8bit:
        if target.type != "cuda":
            raise ConfigError("--load-4bit/--load-8bit need a CUDA GPU with bitsandbytes installed.")
        from transformers import BitsAndBytesConfig

        quantization = BitsAndBytesConfig(load_in_4bit=load_4bit, load_in_8bit=load_8bit, llm_int8_skip_modules=["vision_tower", "projector"])
    if model_type == "piip_llava":
        kwargs = {"dtype": dtype}
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        if quantization is not None:
            kwargs["quantization_config"] = quantization
        model = PiipLlavaForConditionalGeneration.from_pretrained(path, **kwargs)
        tokenizer = load_tokenizer(path, padding_side="left")
        if tokenizer.image_token_id != model.config.image_token_id:
            raise CheckpointError(f"{path}: tokenizer's <image> id {tokenizer.image_token_id} != model's {model.config.image_token_id}.")
    elif model_type in OFFICIAL_MODEL_TYPES:
        model, tokenizer = load_official(path, vision_tower_path=vision_tower_path, dtype=dtype,
                                         attn_implementation=attn_implementation or "sdpa")
    else:
        raise CheckpointError(f"{path}/config.json: model_type {model_type!r} is neither 'piip_llava' nor an official LLaVA layout.")
    if quantization is None:
        model = model.to(target)
    model.eval()
    name = template or model.config.conversation_template
    if name is None:
        raise ConfigError(f"{path} does not record a conversation template; pass --template (e.g. vicuna_v1, chatml).")
    return LoadedModel(model, tokenizer, model.image_processor(), get_template(name), Path(path).name)


@dataclass
class GenerationOptions:
    max_new_tokens: int = 128
    temperature: float = 0.0
    """0 means greedy decoding."""
    top_p: float = 1.0
    num_beams: int = 1
    extra: dict = field(default_factory=dict)

    def kwargs(self) -> dict:
        sample = self.temperature > 0
        out = dict(max_new_tokens=self.max_new_tokens, do_sample=sample, num_beams=self.num_beams, **self.extra)
        if sample:
            out.update(temperature=self.temperature, top_p=self.top_p)
        else:
            out.update(temperature=None, top_p=None, top_k=None)
        return out


class Generator:
    """Batched multimodal generation with one model; thread-safe (one generate call at a time)."""

    def __init__(self, loaded: LoadedModel, image_aspect_mode: str | None = None):
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.template = loaded.template
        self.aspect_mode = image_aspect_mode or self.model.config.image_aspect_mode
        self._lock = threading.Lock()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode(self, messages: Sequence[dict], images: Sequence[Any]) -> list[int]:
        from .data.preprocess import tokenize_prompt_for_generation

        return tokenize_prompt_for_generation(
            messages, self.tokenizer, self.template, num_image_tokens=self.model.num_image_tokens, num_images=len(images)
        )

    def batch(self, conversations: Sequence[Sequence[dict]], images: Sequence[Sequence[Any]]) -> dict[str, torch.Tensor]:
        """Left-padded ``input_ids`` / ``attention_mask`` and the images of every conversation, in order."""
        encoded = [self.encode(m, im) for m, im in zip(conversations, images)]
        width = max(len(ids) for ids in encoded)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        attention = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, ids in enumerate(encoded):
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention[row, width - len(ids) :] = 1
        flat = [image for group in images for image in group]
        out = {"input_ids": input_ids.to(self.device), "attention_mask": attention.to(self.device)}
        if flat:
            out["pixel_values"] = self.loaded.processor(flat, self.aspect_mode).to(self.device)
        return out

    def _stop_ids(self) -> list[int]:
        ids = []
        if self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
        for stop in self.template.stop_strings:
            token = self.tokenizer.tokenizer.convert_tokens_to_ids(stop)
            if isinstance(token, int) and token != self.tokenizer.tokenizer.unk_token_id and token not in ids:
                ids.append(token)
        return ids

    def _clean(self, text: str) -> str:
        for stop in self.template.stop_strings:
            if stop and stop.strip() and stop in text:
                text = text[: text.index(stop)]
        return text.strip()

    @torch.inference_mode()
    def generate(self, conversations, images, options: GenerationOptions | None = None) -> list[str]:
        """Answers for a batch of conversations (each a list of ``{"role", "content"}`` messages)."""
        options = options or GenerationOptions()
        inputs = self.batch(conversations, images)
        with self._lock:
            output = self.model.generate(**inputs, **options.kwargs(), eos_token_id=self._stop_ids(),
                                         pad_token_id=self.tokenizer.pad_token_id)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        texts = self.tokenizer.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [self._clean(t) for t in texts]

    def stream(self, messages: Sequence[dict], images: Sequence[Any], options: GenerationOptions | None = None) -> Iterator[str]:
        """Yield the answer's text as it grows (chunks), for one conversation."""
        from transformers import TextIteratorStreamer

        options = options or GenerationOptions()
        inputs = self.batch([messages], [images])
        streamer = TextIteratorStreamer(self.tokenizer.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        errors: list[BaseException] = []

        def work() -> None:
            try:
                with self._lock, torch.inference_mode():
                    self.model.generate(**inputs, **options.kwargs(), streamer=streamer, eos_token_id=self._stop_ids(),
                                        pad_token_id=self.tokenizer.pad_token_id)
            except BaseException as error:  # re-raised in the consumer thread below
                errors.append(error)
                streamer.end()

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        text = ""
        for chunk in streamer:
            text += chunk
            stopped = next((s for s in self.template.stop_strings if s.strip() and s in text), None)
            if stopped:
                chunk = chunk[: max(0, len(chunk) - (len(text) - text.index(stopped)))]
                if chunk:
                    yield chunk
                break
            if chunk:
                yield chunk
        thread.join()
        if errors:
            raise errors[0]


def user_message(question: str, num_images: int) -> dict:
    """A user turn with ``num_images`` placeholders before the text (LLaVA's convention)."""
    return {"role": "user", "content": (IMAGE_PLACEHOLDER + "\n") * num_images + question}
