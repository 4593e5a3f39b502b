"""Named architectures: the released PIIP-LLaVA models, the LLaVA-1.5 baseline and small test towers.

Official names map to the ``configs/<name>.py`` files that released ``config.json``s point at, so
a release directory is rebuilt from its name alone. Each entry is a function returning fresh config
objects (no shared mutable state); ``get_architecture`` looks one up with a helpful error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from ..errors import UnknownArchitectureError
from .branches import ClipViTBranchConfig, ConvNeXtBranchConfig
from .interaction import InteractionConfig
from .tower import VisionTowerConfig, llava_baseline_stats


@dataclass(frozen=True)
class ArchitectureSpec:
    """A vision tower + projector design and the LLM width it was released with."""

    name: str
    tower: VisionTowerConfig
    projector_type: str
    llm_hidden_size: int
    llm: str
    """The LLM the release was trained on (informational; any causal LM can be plugged in)."""
    description: str = ""


# ------------------------------------------------------------------------------------ building blocks


def clip_l16(image_size: int, pretrained_image_size: int, ranges: list[tuple[int, int]]) -> ClipViTBranchConfig:
    """CLIP-L/16: OpenAI CLIP-L/14 converted to 16-pixel patches (``OpenGVLab/clip-vit-large-patch14to16-*``)."""
    return ClipViTBranchConfig(
        image_size=image_size, interaction_indexes=ranges, hidden_size=1024, num_layers=24, num_heads=16,
        intermediate_size=4096, patch_size=16, pretrained_image_size=pretrained_image_size,
    )


def clip_b16(image_size: int, ranges: list[tuple[int, int]]) -> ClipViTBranchConfig:
    """CLIP-B/16 (``openai/clip-vit-base-patch16``)."""
    return ClipViTBranchConfig(
        image_size=image_size, interaction_indexes=ranges, hidden_size=768, num_layers=12, num_heads=12,
        intermediate_size=3072, patch_size=16, pretrained_image_size=224,
    )


def convnext(size: str, image_size: int, ranges: list[tuple[int, int]]) -> ConvNeXtBranchConfig:
    """ConvNeXt-B (``convnext_base.clip_laiona_augreg_320``) or -L (``convnext_large_mlp.clip_laion2b_ft_320``)."""
    if size == "b":
        return ConvNeXtBranchConfig(image_size=image_size, interaction_indexes=ranges, timm_name="convnext_base", dims=(128, 256, 512, 1024))
    return ConvNeXtBranchConfig(image_size=image_size, interaction_indexes=ranges, timm_name="convnext_large_mlp", dims=(192, 384, 768, 1536))


def every(step: int, total: int) -> list[tuple[int, int]]:
    """Ranges of ``step`` blocks covering ``total`` blocks: every(2, 24) = [(0,1), (2,3), ...]."""
    return [(i, i + step - 1) for i in range(0, total, step)]


CONVNEXT_12 = [(0, 2), (3, 6), (7, 10), (11, 13), (14, 16), (17, 19), (20, 22), (23, 25), (26, 28), (29, 31), (32, 34), (35, 38)]
CONVNEXT_24 = [
    (0, 1), (2, 2), (3, 4), (5, 6), (7, 9), (10, 10), (11, 12), (13, 13), (14, 15), (16, 16), (17, 18), (19, 19),
    (20, 21), (22, 22), (23, 24), (25, 25), (26, 27), (28, 28), (29, 30), (31, 31), (32, 33), (34, 34), (35, 36), (37, 38),
]
HALVES_L, HALVES_B, HALVES_CNX = [(0, 11), (12, 23)], [(0, 5), (6, 11)], [(0, 19), (20, 38)]
LLM_7B, LLM_13B = ("lmsys/vicuna-7b-v1.5", 4096), ("lmsys/vicuna-13b-v1.5", 5120)


def _piip(name: str, branches: list, llm: tuple[str, int], description: str, interaction: InteractionConfig | None = None) -> ArchitectureSpec:
    tower = VisionTowerConfig(branches=branches, kind="piip", interaction=interaction or InteractionConfig())
    return ArchitectureSpec(name, tower, "piip_gn_mlp", llm[1], llm[0], description)


# ------------------------------------------------------------------------------------------ entries


def _clip_bl_512_256(llm=LLM_7B) -> ArchitectureSpec:
    return _piip("piip-llava_clip-bl_512-256_7B", [clip_l16(256, 224, HALVES_L), clip_b16(512, HALVES_B)], llm,
                 "CLIP-L/16 @256 + CLIP-B/16 @512, 2 interactions")


def _clip_bl_512_448(name: str, llm: tuple[str, int]) -> ArchitectureSpec:
    return _piip(name, [clip_l16(448, 336, every(2, 24)), clip_b16(512, every(1, 12))], llm,
                 "CLIP-L/16 @448 + CLIP-B/16 @512, 12 interactions")


def _cnx_640_224() -> ArchitectureSpec:
    return _piip("piip-llava_convnext-b_clip-l_640-224_7B", [clip_l16(224, 224, HALVES_L), convnext("b", 640, HALVES_CNX)], LLM_7B,
                 "CLIP-L/16 @224 + ConvNeXt-B @640, 2 interactions, 400 visual tokens")


def _cnx_1024_336(name: str, size: str, llm: tuple[str, int]) -> ArchitectureSpec:
    if llm == LLM_13B:
        ranges_l, ranges_c, n = every(1, 24), CONVNEXT_24, 24
    else:
        ranges_l, ranges_c, n = every(2, 24), CONVNEXT_12, 12
    return _piip(name, [clip_l16(336, 336, ranges_l), convnext(size, 1024, ranges_c)], llm,
                 f"CLIP-L/16 @336 + ConvNeXt-{size.upper()} @1024, {n} interactions")


def _llava_v15() -> ArchitectureSpec:
    branch = ClipViTBranchConfig(image_size=336, hidden_size=1024, num_layers=24, num_heads=16, intermediate_size=4096,
                                 patch_size=14, pretrained_image_size=336)
    tower = VisionTowerConfig(branches=[branch], kind="single", select_layer=-2, **llava_baseline_stats())
    return ArchitectureSpec("llava-v1.5-clip-l-336", tower, "mlp2x_gelu", 4096, LLM_7B[0],
                            "LLaVA-1.5: CLIP-L/14 @336, layer -2, cls dropped, mlp2x_gelu, 576 visual tokens")


def tiny_vit(image_size: int, hidden: int, layers: int, heads: int, ranges: list[tuple[int, int]], pretrained_image_size: int | None = None) -> ClipViTBranchConfig:
    """A small CLIP-architecture ViT (patch 16, MLP ratio 4) for tests, CPU demos and experiments."""
    return ClipViTBranchConfig(
        image_size=image_size, interaction_indexes=ranges, hidden_size=hidden, num_layers=layers, num_heads=heads,
        intermediate_size=4 * hidden, patch_size=16, pretrained_image_size=pretrained_image_size or image_size,
    )


def _tiny_piip_vit() -> ArchitectureSpec:
    branches = [tiny_vit(64, 64, 4, 4, [(0, 1), (2, 3)], 48), tiny_vit(128, 32, 2, 2, [(0, 0), (1, 1)], 80)]
    return _piip("tiny-piip-vit", branches, ("any", 64), "test tower shaped like clip_bl_tiny (64/32 wide)")


def _tiny_piip_convnext() -> ArchitectureSpec:
    branches = [tiny_vit(64, 48, 4, 4, [(0, 0), (1, 1), (2, 2), (3, 3)], 80),
                ConvNeXtBranchConfig(image_size=160, interaction_indexes=[(0, 2), (3, 6), (7, 20), (21, 38)], dims=(8, 16, 32, 64))]
    return _piip("tiny-piip-convnext", branches, ("any", 64), "test tower shaped like convnext_clip_tiny",
                 InteractionConfig(deform_num_heads=4))


def _tiny_single() -> ArchitectureSpec:
    tower = VisionTowerConfig(branches=[tiny_vit(64, 64, 4, 4, [])], kind="single", select_layer=-2, **llava_baseline_stats())
    return ArchitectureSpec("tiny-llava", tower, "mlp2x_gelu", 64, "any", "test tower shaped like LLaVA-1.5 (layer -2)")


def _paper_3branch() -> ArchitectureSpec:
    """The paper's Table X three-branch ViT pyramid (base @128, small @256, tiny @512; 12 layers each)."""
    branches = [tiny_vit(128, 640, 12, 8, every(3, 12), 128), tiny_vit(256, 320, 12, 4, every(3, 12), 256),
                tiny_vit(512, 160, 12, 2, every(3, 12), 512)]
    return _piip("piip-vit-3branch_512-256-128", branches, LLM_7B, "3-branch ViT pyramid of the paper's Table X, 4 interactions")


def _quickstart() -> ArchitectureSpec:
    """The CPU quickstart's pyramid: a 6-layer ViT-192 on the 32 px image (8 px patches) and a 4-layer
    ViT-96 on the 64 px image (16 px patches), both on a 4x4 grid, 2 interactions; 16 visual tokens
    keep SmolLM2-135M's sequence short enough for a CPU."""
    branches = [
        ClipViTBranchConfig(image_size=32, interaction_indexes=[(0, 2), (3, 5)], hidden_size=192, num_layers=6, num_heads=3,
                            intermediate_size=768, patch_size=8, pretrained_image_size=32),
        ClipViTBranchConfig(image_size=64, interaction_indexes=[(0, 1), (2, 3)], hidden_size=96, num_layers=4, num_heads=2,
                            intermediate_size=384, patch_size=16, pretrained_image_size=64),
    ]
    return _piip("piip-quickstart_64-32", branches, ("HuggingFaceTB/SmolLM2-135M-Instruct", 576),
                 "CPU quickstart: ViT-192x6 @32 px + ViT-96x4 @64 px, 2 interactions, 16 visual tokens",
                 InteractionConfig(deform_num_heads=8))


ARCHITECTURES: Mapping[str, Callable[[], ArchitectureSpec]] = {
    "piip-llava_clip-bl_512-256_7B": _clip_bl_512_256,
    "piip-llava_clip-bl_512-448_7B": lambda: _clip_bl_512_448("piip-llava_clip-bl_512-448_7B", LLM_7B),
    "piip-llava_clip-bl_512-448_13B": lambda: _clip_bl_512_448("piip-llava_clip-bl_512-448_13B", LLM_13B),
    "piip-llava_convnext-b_clip-l_640-224_7B": _cnx_640_224,
    "piip-llava_convnext-b_clip-l_1024-336_7B": lambda: _cnx_1024_336("piip-llava_convnext-b_clip-l_1024-336_7B", "b", LLM_7B),
    "piip-llava_convnext-b_clip-l_1024-336_13B": lambda: _cnx_1024_336("piip-llava_convnext-b_clip-l_1024-336_13B", "b", LLM_13B),
    "piip-llava_convnext-l_clip-l_1024-336_7B": lambda: _cnx_1024_336("piip-llava_convnext-l_clip-l_1024-336_7B", "l", LLM_7B),
    "piip-llava_convnext-l_clip-l_1024-336_13B": lambda: _cnx_1024_336("piip-llava_convnext-l_clip-l_1024-336_13B", "l", LLM_13B),
    "piip-llava-plus_convnext-l_clip-l_1024-336_7B": lambda: _cnx_1024_336("piip-llava-plus_convnext-l_clip-l_1024-336_7B", "l", LLM_7B),
    "llava-v1.5-clip-l-336": _llava_v15,
    "piip-vit-3branch_512-256-128": _paper_3branch,
    "piip-quickstart_64-32": _quickstart,
    "tiny-piip-vit": _tiny_piip_vit,
    "tiny-piip-convnext": _tiny_piip_convnext,
    "tiny-llava": _tiny_single,
}

RELEASED = tuple(name for name in ARCHITECTURES if name.startswith("piip-llava"))
"""The nine released PIIP-LLaVA configurations."""


def get_architecture(name: str) -> ArchitectureSpec:
    """Look up an architecture by its official name (a ``configs/<name>.py`` path is accepted too)."""
    key = name.rsplit("/", 1)[-1]
    key = key[:-3] if key.endswith(".py") else key
    if key not in ARCHITECTURES:
        import difflib

        close = difflib.get_close_matches(key, ARCHITECTURES, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownArchitectureError(f"unknown architecture {name!r}.{hint} Known: {', '.join(ARCHITECTURES)}.")
    return ARCHITECTURES[key]()
