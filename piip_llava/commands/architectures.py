"""List the registered architectures."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    from ..vision.registry import ARCHITECTURES

    for name, build in ARCHITECTURES.items():
        spec = build()
        print(f"{name:48s} {spec.tower.kind:6s} {spec.tower.image_size:5d}px  {spec.description}")
    return 0
