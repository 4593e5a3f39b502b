"""Chat with a model about an image in the terminal (streams tokens; /image, /reset, /exit).

Reads standard input, so it also runs from a script: ``printf 'What is this?\\n/exit\\n' | piip-llava chat --image cat.jpg``.
"""

from __future__ import annotations

import argparse

from ..serve.model_loading import add_model_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--image", default=None, help="image to talk about (change it later with /image PATH)")
    parser.add_argument("--temperature", type=float, default=0.0, help="sampling temperature; 0 = greedy (default)")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (with --temperature > 0)")
    parser.add_argument("--max-new-tokens", type=int, default=512, help="longest answer, in tokens")


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..serve.chat_cli import ChatConfig, read_image, run_chat
    from ..serve.model_loading import (
        ModelOptions,
        check_model_path,
        load_generator,
        prefer_passive_openmp,
    )

    if args.temperature < 0:
        raise ConfigError("--temperature must be >= 0 (0 = greedy).")
    if not 0 < args.top_p <= 1:
        raise ConfigError("--top-p must be in (0, 1].")
    if args.max_new_tokens < 1:
        raise ConfigError("--max-new-tokens must be at least 1.")
    check_model_path(args.model)
    prefer_passive_openmp()  # before torch is imported
    if args.image:
        read_image(args.image)  # a bad path fails now, not after the model has loaded
    generator = load_generator(ModelOptions.from_args(args))
    config = ChatConfig(image=args.image, temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens)
    return run_chat(generator, config)
