"""``PiipLlavaConfig``: a vision tower config, a projector type and any causal-LM config.

Saved as one ``config.json`` (``model_type: piip_llava``) with the LLM's config nested under
``text_config`` -- the layout transformers uses for its own multimodal models -- so ``AutoConfig``
and ``AutoModelForCausalLM`` / ``AutoModelForImageTextToText`` load it without remote code.
"""

from __future__ import annotations

from typing import Any

from transformers import AutoConfig, PretrainedConfig

from ..vision.registry import ArchitectureSpec, get_architecture
from ..vision.tower import VisionTowerConfig
from .projector import ProjectorConfig


class PiipLlavaConfig(PretrainedConfig):
    """Configuration of :class:`~piip_llava.model.modeling.PiipLlavaForConditionalGeneration`.

    Args:
        vision_config: a :class:`VisionTowerConfig` or its ``to_dict()`` form.
        projector_type: ``piip_gn_mlp`` (PIIP), ``mlp2x_gelu`` (LLaVA-1.5) or ``linear``.
        text_config: the language model's config (any ``AutoModelForCausalLM`` architecture).
        image_token_id: vocabulary id of the ``<image>`` placeholder; each image occupies
            ``num_image_tokens`` consecutive positions holding this id.
        num_image_tokens: visual tokens per image (filled in from the tower when the model is built).
        architecture: registry name the tower was built from (informational, e.g. for ``flops``).
        conversation_template: default chat template name for inference (``vicuna_v1``, ``chatml`` ...).
        image_aspect_mode: ``pad`` (finetune/eval), ``square`` (pretraining) or ``resize``.
    """

    model_type = "piip_llava"
    sub_configs = {"text_config": AutoConfig}

    def __init__(
        self,
        vision_config: VisionTowerConfig | dict[str, Any] | None = None,
        projector_type: str = "piip_gn_mlp",
        text_config: PretrainedConfig | dict[str, Any] | None = None,
        image_token_id: int | None = None,
        num_image_tokens: int | None = None,
        architecture: str | None = None,
        conversation_template: str | None = None,
        image_aspect_mode: str = "pad",
        **kwargs: Any,
    ):
        if isinstance(vision_config, VisionTowerConfig):
            vision_config = vision_config.to_dict()
        if isinstance(text_config, dict):
            if "model_type" not in text_config:
                raise ValueError("text_config needs a 'model_type' (e.g. 'llama') to pick the language model class.")
            text_config = AutoConfig.for_model(**text_config)
        ProjectorConfig(type=projector_type)  # validates the name
        if image_aspect_mode not in ("pad", "square", "resize"):
            raise ValueError(f"image_aspect_mode must be 'pad', 'square' or 'resize', got {image_aspect_mode!r}.")
        self.vision_config = vision_config
        self.projector_type = projector_type
        self.text_config = text_config
        self.image_token_id = image_token_id
        self.num_image_tokens = num_image_tokens
        self.architecture = architecture
        self.conversation_template = conversation_template
        self.image_aspect_mode = image_aspect_mode
        if text_config is not None:
            kwargs.setdefault("tie_word_embeddings", getattr(text_config, "tie_word_embeddings", False))
        super().__init__(**kwargs)

    @property
    def tower_config(self) -> VisionTowerConfig:
        if self.vision_config is None:
            raise ValueError("this PiipLlavaConfig has no vision_config.")
        return VisionTowerConfig.from_dict(self.vision_config)

    @property
    def projector_config(self) -> ProjectorConfig:
        return ProjectorConfig(type=self.projector_type)

    @classmethod
    def from_architecture(
        cls,
        architecture: str | ArchitectureSpec,
        text_config: PretrainedConfig,
        image_token_id: int,
        **kwargs: Any,
    ) -> "PiipLlavaConfig":
        """Config for a registered tower design on top of ``text_config``'s language model."""
        spec = get_architecture(architecture) if isinstance(architecture, str) else architecture
        return cls(
            vision_config=spec.tower,
            projector_type=spec.projector_type,
            text_config=text_config,
            image_token_id=image_token_id,
            architecture=spec.name,
            **kwargs,
        )
