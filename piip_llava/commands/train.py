"""Train PIIP-LLaVA with the LLaVA-1.5 recipe (stage 1 ``--stage pretrain``, stage 2 ``--stage finetune``).

All of transformers' ``TrainingArguments`` apply (``--deepspeed scripts/zero3.json``, ``--bf16``,
``--gradient_checkpointing``, ``--save_steps`` ...). Launch multi-GPU / multi-node runs with
``torchrun`` or ``deepspeed`` around ``python -m piip_llava.train``; see scripts/.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("options", nargs=argparse.REMAINDER, help="training options (see `python -m piip_llava.train --help`)")


def run(args: argparse.Namespace) -> int:
    from ..train.__main__ import main

    return main(args.options)
