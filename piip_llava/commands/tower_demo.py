"""Run a real-shape PIIP tower (random weights) on a real photo and print its cost.

Offline and weight-free: it shows the pyramid's inputs and outputs at the released shapes and the
FLOPs table of every registered architecture, in a few seconds on a laptop CPU.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", default="piip-llava_clip-bl_512-256_7B", help="architecture to run")
    parser.add_argument("--image", default=None, help="image file (default: skimage's 'chelsea' photo)")


def run(args: argparse.Namespace) -> int:
    import time

    import torch

    from ..commands.flops import format_table
    from ..flops import count_by_name
    from ..model.projector import ProjectorConfig, build_projector
    from ..vision.registry import RELEASED, get_architecture
    from ..vision.tower import build_vision_tower

    print(format_table([count_by_name(name) for name in (*RELEASED, "llava-v1.5-clip-l-336")]))
    spec = get_architecture(args.arch)
    if args.image is None:
        from skimage import data

        image, source = data.chelsea(), "skimage.data.chelsea()"
    else:
        image, source = args.image, args.image
    pixel_values = spec.tower.image_processor()(image)
    tower = build_vision_tower(spec.tower).eval()
    projector = build_projector(ProjectorConfig(spec.projector_type), tower.out_dims, spec.llm_hidden_size).eval()
    start = time.perf_counter()
    with torch.inference_mode():
        features = tower(pixel_values)
        tokens = projector(features)
    elapsed = time.perf_counter() - start
    print(f"\n{spec.name}: {source} -> pixel_values {tuple(pixel_values.shape)}")
    for k, (branch, feature) in enumerate(zip(tower.branches, features), start=1):
        print(f"  branch{k}: {type(branch).__name__:14s} @{branch.config.image_size}px -> features {tuple(feature.shape)}")
    print(f"  projector -> {tuple(tokens.shape)} visual tokens for the LLM; forward {elapsed:.2f} s on CPU (random weights)")
    return 0
