"""The PIIP-LLaVA model: config, projector, composite model and checkpoint conversion."""

from .configuration import PiipLlavaConfig
from .modeling import ImageTokenMismatchError, PiipLlavaForConditionalGeneration, register_auto_classes

register_auto_classes()

__all__ = ["ImageTokenMismatchError", "PiipLlavaConfig", "PiipLlavaForConditionalGeneration", "register_auto_classes"]
