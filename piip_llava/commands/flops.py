"""Parameters and vision-encoder MACs (paper convention) of registered architectures."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("arch", nargs="?", help="architecture name (see `piip-llava architectures`)")
    parser.add_argument("--all", action="store_true", help="table for every registered architecture")
    parser.add_argument("--json", action="store_true", help="print JSON (one object, or a list with --all)")
    parser.add_argument("--with-llm", action="store_true", help="also count the released LLM's parameters")
    parser.add_argument("--no-official-quirk", action="store_true",
                        help="count ConvNeXt deformable queries at their true grid instead of the official counter's")


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..flops import count_by_name
    from ..vision.registry import ARCHITECTURES

    if bool(args.arch) == bool(args.all):
        raise ConfigError("give one architecture name, or --all.")
    names = list(ARCHITECTURES) if args.all else [args.arch]
    reports = [count_by_name(n, with_llm=args.with_llm, official_convnext_quirk=not args.no_official_quirk) for n in names]
    if args.json:
        payload = [r.to_json() for r in reports]
        print(json.dumps(payload if args.all else payload[0], indent=2))
        return 0
    print(format_table(reports))
    return 0


def _short(value: float) -> str:
    """One decimal for real models, three significant digits for the tiny test towers."""
    return f"{value:.1f}" if value >= 1 else f"{value:.3g}"


def format_table(reports) -> str:
    header = f"{'architecture':48s} {'image':>5s} {'tokens':>6s} {'GMACs':>8s} {'tower M':>8s} {'proj M':>7s}  per component (GMACs)"
    lines = [header, "-" * len(header)]
    for r in reports:
        j = r.to_json()
        parts = ", ".join(f"{k} {_short(v)}" for k, v in j["macs_by_component_g"].items())
        lines.append(
            f"{r.arch:48s} {r.image_size:5d} {r.num_visual_tokens:6d} {_short(j['macs_paper_g']):>8s} "
            f"{j['params_m']['vision_tower']:8.1f} {j['params_m']['projector']:7.1f}  {parts}"
        )
    lines.append("GMACs: vision encoder (branches + interactions), paper convention; projector listed separately.")
    return "\n".join(lines)
