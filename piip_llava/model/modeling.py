"""``PiipLlavaForConditionalGeneration``: vision tower + projector + any Hugging Face causal LM.

Composition instead of LLaVA's mixins: the language model is an ordinary ``AutoModelForCausalLM``
(Vicuna/LLaMA, Qwen2, SmolLM2, ...) used through its public ``forward``. Images enter the sequence
the way transformers' own Llava does it: the tokenizer expands every ``<image>`` into
``num_image_tokens`` copies of ``image_token_id``; the model embeds the sequence and overwrites
exactly those positions with the projected visual tokens (``masked_scatter``). This batches, works
with left padding and the KV cache, and never splices sequences sample by sample.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoModelForCausalLM, GenerationMixin, PreTrainedModel

from ..errors import PiipLlavaError
from ..vision.image_processor import PiipImageProcessor
from ..vision.tower import build_vision_tower
from .configuration import PiipLlavaConfig
from .projector import build_projector


class ImageTokenMismatchError(PiipLlavaError, ValueError):
    """The number of ``<image>`` positions in the prompt does not match the images given."""


def _cache_length(kwargs: dict[str, Any]) -> int:
    """Tokens already in the KV cache (0 on the prefill step), whatever the installed transformers calls it."""
    cache = kwargs.get("cache", kwargs.get("past_key_values"))
    if cache is None:
        return 0
    if hasattr(cache, "get_seq_length"):
        return int(cache.get_seq_length())
    return int(cache[0][0].shape[-2]) if len(cache) else 0


class PiipLlavaPreTrainedModel(PreTrainedModel):
    config_class = PiipLlavaConfig
    base_model_prefix = "piip_llava"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flash_attn_2 = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _no_split_modules = ["InteractionBlock", "CLIPEncoderLayer", "ConvNeXtBlock"]
    _skip_keys_device_placement = ["past_key_values", "cache"]

    def _init_weights(self, module: nn.Module) -> None:
        """Nothing to do: the vision side initialises itself when built (CLIP's own init via transformers,
        timm's ConvNeXt init, the official deformable-attention init and zero gates), and the language
        model brings its own ``_init_weights``. Re-running a generic init here would overwrite the
        deformable offsets' ring initialisation with random values."""


class PiipLlavaForConditionalGeneration(PiipLlavaPreTrainedModel, GenerationMixin):
    """PIIP-LLaVA (or LLaVA-1.5) multimodal causal LM.

    Parameters live under ``vision_tower.*``, ``projector.*`` and ``language_model.*``.
    """

    def __init__(self, config: PiipLlavaConfig, language_model: PreTrainedModel | None = None):
        super().__init__(config)
        if config.text_config is None:
            raise ValueError("PiipLlavaConfig.text_config is required to build the language model.")
        tower_config = config.tower_config
        attn = getattr(config, "_attn_implementation", None) or "sdpa"
        # PretrainedConfig.__init__ resets nested configs' attention choice to None; a language model
        # left at None builds no causal mask in some transformers versions, so pass ours down.
        if getattr(config.text_config, "_attn_implementation", None) is None:
            config.text_config._attn_implementation = attn
        if language_model is not None and getattr(language_model.config, "_attn_implementation", None) is None:
            language_model.config._attn_implementation = attn
        self.vision_tower = build_vision_tower(tower_config, attn if attn in ("eager", "sdpa", "flash_attention_2") else "sdpa")
        out_grid = self.vision_tower.out_grids[-1]
        num_tokens = out_grid[0] * out_grid[1]
        if config.num_image_tokens not in (None, num_tokens):
            raise ValueError(f"config says {config.num_image_tokens} image tokens but the tower produces {num_tokens}.")
        config.num_image_tokens = num_tokens
        self.projector = build_projector(config.projector_config, self.vision_tower.out_dims, config.text_config.hidden_size)
        self.language_model = language_model if language_model is not None else AutoModelForCausalLM.from_config(config.text_config)
        self.post_init()

    # ---------------------------------------------------------------------------- HF plumbing

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_output_embeddings(value)

    def get_decoder(self) -> nn.Module:
        return self.language_model.get_decoder()

    @property
    def num_image_tokens(self) -> int:
        return int(self.config.num_image_tokens)

    def image_processor(self) -> PiipImageProcessor:
        """The preprocessing this model expects (resolution, statistics, pad colour)."""
        return self.config.tower_config.image_processor()

    # ---------------------------------------------------------------------------- forward

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) normalised images -> (B, num_image_tokens, hidden) visual tokens."""
        parameter = next(self.vision_tower.parameters())
        features = self.vision_tower(pixel_values.to(device=parameter.device, dtype=parameter.dtype))
        return self.projector(features)

    def embed_multimodal(
        self,
        input_ids: torch.LongTensor,
        pixel_values: torch.Tensor | None,
        image_sample_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Token embeddings with every run of image placeholders replaced by that image's visual tokens.

        ``image_sample_mask`` (B,) marks which rows of ``pixel_values`` are real images when the collator
        padded text-only samples with a blank image. Those blanks still go through the tower (so every
        rank runs the same graph under ZeRO-3/DDP) but contribute zero to the sequence.
        """
        image_mask = input_ids == self.config.image_token_id
        embeds = self.get_input_embeddings()(input_ids)
        n_positions = int(image_mask.sum())
        if pixel_values is None:
            if n_positions:
                raise ImageTokenMismatchError(
                    f"the prompt holds {n_positions} image placeholder tokens but no pixel_values were given; "
                    "pass the images, or remove '<image>' from the text."
                )
            return embeds
        real = None
        if image_sample_mask is not None and image_sample_mask.shape[0] == pixel_values.shape[0]:
            real = image_sample_mask.to(device=pixel_values.device, dtype=torch.bool)
        n_images = int(real.sum()) if real is not None else pixel_values.shape[0]
        expected = n_images * self.num_image_tokens
        if n_positions != expected:
            raise ImageTokenMismatchError(
                f"{n_images} image(s) need {expected} placeholder positions ({self.num_image_tokens} each) but the "
                f"prompt holds {n_positions}. Tokenise with this model's num_image_tokens and one '<image>' per image."
            )
        features = self.get_image_features(pixel_values)
        if real is not None:
            anchor = features[~real].sum() * 0.0  # keeps the blank images' graph without changing values
            features = features[real]
            embeds = embeds + anchor.to(embeds.dtype)
        return embeds.masked_scatter(image_mask.unsqueeze(-1), features.to(embeds.dtype))

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        image_sample_mask: torch.Tensor | None = None,
        **kwargs: Any,
    ):
        """Like the language model's ``forward`` plus ``pixel_values`` (one image per ``<image>``).

        On decoding steps (tokens already cached) the images have been consumed and are ignored.
        """
        if inputs_embeds is None:
            if input_ids is None:
                raise ValueError("pass input_ids or inputs_embeds.")
            if pixel_values is not None and _cache_length(kwargs) > 0:
                pixel_values = None
            inputs_embeds = self.embed_multimodal(input_ids, pixel_values, image_sample_mask)
        return self.language_model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, labels=labels, **kwargs)


def register_auto_classes() -> None:
    """Make ``AutoConfig`` / ``AutoModelForCausalLM`` / ``AutoModelForImageTextToText`` know ``piip_llava``.

    Idempotent; called when :mod:`piip_llava.model` is imported.
    """
    from transformers import AutoConfig, AutoModelForImageTextToText

    AutoConfig.register(PiipLlavaConfig.model_type, PiipLlavaConfig, exist_ok=True)
    AutoModelForCausalLM.register(PiipLlavaConfig, PiipLlavaForConditionalGeneration, exist_ok=True)
    AutoModelForImageTextToText.register(PiipLlavaConfig, PiipLlavaForConditionalGeneration, exist_ok=True)
