"""``piip-llava`` command line: one entry point, one module per subcommand.

Subcommand modules are imported only when used, so ``piip-llava flops`` does not pay for gradio
and ``piip-llava chat`` does not pay for deepspeed.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import PiipLlavaError

SUBCOMMANDS = {
    "quickstart": ("piip_llava.commands.quickstart", "train a small PIIP-LLaVA end to end on CPU, offline"),
    "train": ("piip_llava.commands.train", "train (stage 1 pretrain / stage 2 finetune) with the LLaVA-1.5 recipe"),
    "eval": ("piip_llava.commands.evaluate", "generate answers for LLaVA-1.5 benchmarks, score them, write results + uploads"),
    "flops": ("piip_llava.commands.flops", "parameters and vision MACs of registered architectures"),
    "convert": ("piip_llava.commands.convert", "convert an official PIIP-LLaVA / LLaVA-1.5 release to this format"),
    "tower-demo": ("piip_llava.commands.tower_demo", "run a real-shape PIIP tower on a real photo (no weights needed)"),
    "architectures": ("piip_llava.commands.architectures", "list registered architectures"),
    "chat": ("piip_llava.commands.chat", "chat with a model about an image in the terminal"),
    "demo": ("piip_llava.commands.demo", "web demo (Gradio): upload an image and chat with the model"),
    "serve": ("piip_llava.commands.serve", "OpenAI-compatible HTTP API (/v1/chat/completions) with batching"),
    "merge-lora": ("piip_llava.commands.merge_lora", "merge LoRA adapters into a full checkpoint"),
    "pyramid-repro": ("piip_llava.commands.pyramid_repro", "the paper's pyramid-vs-single-resolution claim in miniature (CPU, synthetic VQA)"),
}

PASSTHROUGH = {"train"}
"""Subcommands whose options are parsed by the subcommand itself (``train``: transformers' HfArgumentParser).
argparse's ``nargs=REMAINDER`` rejects a remainder that starts with an option (``train --stage ...``), so
these get the raw argument list."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="piip-llava", description="PIIP-LLaVA: parameter-inverted image pyramids for multimodal LLMs.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip().splitlines()[0])
        module.add_arguments(command)
        command.set_defaults(_module=module_name)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in PASSTHROUGH:
        args = argparse.Namespace(command=argv[0], options=list(argv[1:]), _module=SUBCOMMANDS[argv[0]][0])
    else:
        parser = build_parser()
        args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except PiipLlavaError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
