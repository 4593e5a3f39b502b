"""The model options every serving front end shares (chat, demo, serve), and loading them.

The three front ends take the same ``--model/--device/--dtype/--template/--load-4bit/--load-8bit``
flags, so they are declared once here. Only ``argparse`` and the standard library are imported at
module level: ``piip-llava --help`` imports every command module and must stay fast.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "outputs/quickstart"
"""Where ``piip-llava quickstart`` writes its checkpoint: the front ends' default model."""


@dataclass(frozen=True)
class ModelOptions:
    path: str = DEFAULT_MODEL
    device: str | None = None
    dtype: str | None = None
    template: str | None = None
    load_4bit: bool = False
    load_8bit: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ModelOptions:
        return cls(path=args.model, device=args.device, dtype=args.dtype, template=args.template,
                   load_4bit=args.load_4bit, load_8bit=args.load_8bit)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", default=DEFAULT_MODEL,
                       help=f"checkpoint folder (ours or an official LLaVA release; default: {DEFAULT_MODEL}, "
                            "written by `piip-llava quickstart`)")
    group.add_argument("--device", default=None, choices=("auto", "cpu", "cuda", "mps"),
                       help="default: cuda if available, else mps, else cpu")
    group.add_argument("--dtype", default=None, choices=("auto", "float32", "bfloat16", "float16"),
                       help="default: float16 on GPUs, float32 on CPU")
    group.add_argument("--template", default=None, help="conversation template (default: the one the checkpoint records)")
    quant = group.add_mutually_exclusive_group()
    quant.add_argument("--load-4bit", action="store_true", help="quantise the LLM to 4 bits (CUDA + bitsandbytes)")
    quant.add_argument("--load-8bit", action="store_true", help="quantise the LLM to 8 bits (CUDA + bitsandbytes)")


def prefer_passive_openmp() -> None:
    """Ask OpenMP to sleep, not spin, between parallel regions -- unless the user chose otherwise.

    The front ends run the model on one thread while others (the event loop, the token streamer,
    request handlers) need the CPU too. With OpenMP's default busy-waiting, PyTorch's idle CPU threads
    spin and starve them: on a 2-core machine a batch of 8 x 64 tokens took 25-40 s instead of 0.5 s.
    OpenMP reads this variable when it is loaded, so this must run before ``torch`` is imported; it
    changes nothing on GPUs.
    """
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def check_model_path(path: str) -> Path:
    """Fail with a message that says what to do when the checkpoint folder is not there.

    The default points at the quickstart's output, which a fresh clone does not have yet; telling the
    user to run the quickstart is more useful than a "config.json not found" from deep inside loading.
    """
    from ..errors import ConfigError

    folder = Path(path)
    if (folder / "config.json").is_file():
        return folder
    if path == DEFAULT_MODEL or Path(path).resolve() == Path(DEFAULT_MODEL).resolve():
        raise ConfigError(
            f"no model at {path}: run `piip-llava quickstart` first (it trains a small model on CPU in about "
            "5 minutes and writes it there), or pass --model PATH to a checkpoint folder."
        )
    if not folder.exists():
        raise ConfigError(f"--model {path}: no such folder. Pass a checkpoint folder (one with config.json).")
    raise ConfigError(f"--model {path}: no config.json in that folder; it is not a checkpoint.")


def load_generator(options: ModelOptions):
    """Check the path, load the checkpoint and wrap it in a :class:`~piip_llava.inference.Generator`."""
    from ..inference import Generator, load_pretrained_model

    check_model_path(options.path)
    loaded = load_pretrained_model(options.path, device=options.device, dtype=options.dtype, template=options.template,
                                   load_4bit=options.load_4bit, load_8bit=options.load_8bit)
    return Generator(loaded)
