"""Constants shared across the package.

Only true constants live here (values fixed by the released models or by LLaVA's data format);
everything configurable lives in a dataclass config next to the code that uses it.
"""

IMAGE_PLACEHOLDER = "<image>"
"""The text marker users write where an image goes (LLaVA's ``DEFAULT_IMAGE_TOKEN``)."""

IGNORE_INDEX = -100
"""Label value ignored by the loss (``torch.nn.CrossEntropyLoss`` default)."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
"""PIIP-LLaVA normalises *every* branch with ImageNet statistics -- CLIP branches included."""

PAD_COLOR = tuple(int(255 * m) for m in IMAGENET_MEAN)
"""``expand2square`` background: (123, 116, 103). ``int`` truncates, as the official code does."""

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
"""OpenAI CLIP statistics, used by the LLaVA-1.5 baseline tower only."""
