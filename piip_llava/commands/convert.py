"""Convert an official PIIP-LLaVA or LLaVA-1.5 release directory into this project's format."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="release directory (config.json with model_type llava_llama or llava, weights, tokenizer)")
    parser.add_argument("output", help="directory to write (safetensors + config.json + tokenizer)")
    parser.add_argument("--vision-tower", help="local HF CLIP folder (LLaVA-1.5 releases do not contain the CLIP weights)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default=None, help="cast weights (default: keep)")
    parser.add_argument("--max-shard-size", default="5GB")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..model.checkpoints import load_official

    dtype = getattr(torch, args.dtype) if args.dtype else None
    model, tokenizer = load_official(args.source, vision_tower_path=args.vision_tower, dtype=dtype)
    model.save_pretrained(args.output, max_shard_size=args.max_shard_size)
    tokenizer.save_pretrained(args.output)  # LoadedTokenizer: keeps LLaVA's SentencePiece ids on reload
    print(f"wrote {model.config.architecture} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters) to {args.output}")
    return 0
