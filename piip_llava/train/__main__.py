"""``python -m piip_llava.train [options]`` -- the entry point torchrun / deepspeed launch."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from transformers import HfArgumentParser

    from .arguments import DataArguments, ModelArguments, PiipTrainingArguments
    from .run import train

    parser = HfArgumentParser((ModelArguments, DataArguments, PiipTrainingArguments))
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml")):
        model_args, data_args, training_args = parser.parse_json_file(argv[0]) if argv[0].endswith(".json") else parser.parse_yaml_file(argv[0])
    else:
        model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    result = train(model_args, data_args, training_args)
    print(f"saved to {result.output_dir}")
    return 0


if __name__ == "__main__":
    from ..errors import PiipLlavaError

    try:
        sys.exit(main())
    except PiipLlavaError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
