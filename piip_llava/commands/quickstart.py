"""Train a small PIIP-LLaVA end to end on CPU, offline: SmolLM2-135M + a ViT pyramid on easy-vqa.

Writes a normal checkpoint (usable by ``chat``, ``demo``, ``serve`` and ``eval``), a loss plot and a
summary with held-out test accuracy to ``--output-dir``.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", default="outputs/quickstart")
    parser.add_argument("--preset", default="full", choices=("full", "ci"), help="ci: a reduced run that checks the pipeline")
    parser.add_argument("--stage1-images", type=int)
    parser.add_argument("--stage2-conversations", type=int)
    parser.add_argument("--test-questions", type=int)
    parser.add_argument("--seed", type=int)


def run(args: argparse.Namespace) -> int:
    from ..quickstart.recipe import QuickstartConfig, run as run_quickstart

    config = QuickstartConfig.preset(
        args.preset, output_dir=args.output_dir, stage1_images=args.stage1_images,
        stage2_conversations=args.stage2_conversations, test_questions=args.test_questions, seed=args.seed,
    )
    summary = run_quickstart(config)
    from pathlib import Path

    print()
    print(Path(config.output_dir, "summary.md").read_text())
    print(f"checkpoint: {config.output_dir}   loss plot: {config.output_dir}/loss.png")
    print(f"try it:     piip-llava chat --model {config.output_dir} --image <png>")
    return 0 if summary["accuracy"]["n"] else 1
