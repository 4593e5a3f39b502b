"""An lmms-eval model backend for PIIP-LLaVA checkpoints (optional: lmms-eval is not a dependency).

lmms-eval (https://github.com/EvolvingLMMs-Lab/lmms-eval) covers far more tasks than LLaVA-1.5's
suite; this adapter lets it drive our model through the same :class:`piip_llava.inference.Generator`
that ``piip-llava eval`` uses (left-padded batches, the checkpoint's conversation template). Only
``generate_until`` is implemented: PIIP-LLaVA's benchmarks are all generative, and a log-likelihood
path would be a second, untested way to run the model.

Use it from Python (lmms-eval installed)::

    from lmms_eval.evaluator import simple_evaluate
    from piip_llava.eval.lmms_eval_plugin import PiipLlavaLmms

    results = simple_evaluate(model=PiipLlavaLmms("checkpoints/my-run", batch_size=8), tasks=["textvqa_val"])

Importing this module also registers the backend as ``piip_llava`` in lmms-eval's model registry
(where that registry exists), so ``--model piip_llava --model_args pretrained=...`` works in a
process that imported it first. Without lmms-eval the module still imports; constructing the
backend raises an ``ImportError`` that says what to install.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..constants import IMAGE_PLACEHOLDER

try:  # optional dependency: keep `import piip_llava.eval.lmms_eval_plugin` working without it
    from lmms_eval.api.model import lmms as _LmmsBase
except ImportError:  # pragma: no cover - depends on the environment
    _LmmsBase = None

LMMS_EVAL_AVAILABLE = _LmmsBase is not None


def build_user_turn(context: str, num_images: int) -> str:
    """lmms-eval contexts may or may not carry ``<image>``; LLaVA puts one per image before the text."""
    text = context.replace(IMAGE_PLACEHOLDER, "").strip()
    return (IMAGE_PLACEHOLDER + "\n") * num_images + text


def cut_at_stop_strings(text: str, until: Sequence[str] | str | None) -> str:
    """Cut ``text`` at the first of lmms-eval's ``until`` strings (empty strings ignored)."""
    if until is None:
        return text
    for stop in [until] if isinstance(until, str) else until:
        if stop and stop in text:
            text = text[: text.index(stop)]
    return text


def generation_options(gen_kwargs: Mapping[str, Any]):
    """lmms-eval ``gen_kwargs`` -> :class:`piip_llava.inference.GenerationOptions` (greedy by default)."""
    from ..inference import GenerationOptions

    return GenerationOptions(
        max_new_tokens=int(gen_kwargs.get("max_new_tokens", 1024)),
        temperature=float(gen_kwargs.get("temperature", 0.0) or 0.0),
        top_p=float(gen_kwargs.get("top_p", 1.0) or 1.0),
        num_beams=int(gen_kwargs.get("num_beams", 1) or 1),
    )


def generate_until(
    generator: Any,
    requests: Sequence[Any],
    task_dict: Mapping[str, Any],
    batch_size: int,
    on_progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Answer lmms-eval ``generate_until`` requests, in request order.

    Each request's ``args`` is ``(context, gen_kwargs, doc_to_visual, doc_id, task, split)``; the
    images are ``doc_to_visual(task_dict[task][split][doc_id])`` (PIL images; ``None`` entries and
    non-image visuals are rejected with the task and doc id). Consecutive requests with equal
    ``gen_kwargs`` are batched together, so the output order never changes.
    """
    from PIL import Image

    answers: list[str] = []
    i = 0
    while i < len(requests):
        kwargs = requests[i].args[1]
        batch = [requests[i]]
        while len(batch) < batch_size and i + len(batch) < len(requests) and requests[i + len(batch)].args[1] == kwargs:
            batch.append(requests[i + len(batch)])
        conversations, images = [], []
        for request in batch:
            context, _, doc_to_visual, doc_id, task, split = request.args
            visuals = [v for v in (doc_to_visual(task_dict[task][split][doc_id]) or []) if v is not None]
            for v in visuals:
                if not isinstance(v, Image.Image):
                    raise TypeError(f"{task}/{split} doc {doc_id}: PIIP-LLaVA takes images only, got {type(v).__name__}.")
            images.append([v.convert("RGB") for v in visuals])
            conversations.append([{"role": "user", "content": build_user_turn(context, len(visuals))}])
        texts = generator.generate(conversations, images, generation_options(kwargs))
        answers.extend(cut_at_stop_strings(t, kwargs.get("until")).strip() for t in texts)
        if on_progress is not None:
            on_progress(len(batch))
        i += len(batch)
    return answers


class PiipLlavaLmms(_LmmsBase or object):  # type: ignore[misc]
    """lmms-eval backend: ``PiipLlavaLmms(pretrained, device=None, dtype=None, batch_size=1, template=None)``."""

    def __init__(
        self,
        pretrained: str,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int | str = 1,
        template: str | None = None,
        **unused: Any,
    ) -> None:
        if not LMMS_EVAL_AVAILABLE:
            raise ImportError(
                "the lmms-eval backend needs lmms-eval: pip install lmms-eval "
                "(or use `piip-llava eval`, which needs nothing extra)."
            )
        super().__init__()
        from ..inference import Generator, load_pretrained_model

        self.loaded = load_pretrained_model(pretrained, device=device, dtype=dtype, template=template)
        self.generator = Generator(self.loaded)
        self.batch_size = int(batch_size)
        self.unused_model_args = dict(unused)

    def generate_until(self, requests: Sequence[Any]) -> list[str]:
        return generate_until(self.generator, requests, self.task_dict, self.batch_size)

    def loglikelihood(self, requests: Sequence[Any]):
        raise NotImplementedError("the PIIP-LLaVA lmms-eval backend supports generation tasks only.")

    def generate_until_multi_round(self, requests: Sequence[Any]):
        raise NotImplementedError("the PIIP-LLaVA lmms-eval backend supports single-round generation only.")


if LMMS_EVAL_AVAILABLE:  # pragma: no cover - depends on the environment
    try:
        from lmms_eval.api.registry import register_model
    except ImportError:  # newer lmms-eval versions register models differently; the class still works
        pass
    else:
        PiipLlavaLmms = register_model("piip_llava")(PiipLlavaLmms)


__all__ = [
    "LMMS_EVAL_AVAILABLE",
    "PiipLlavaLmms",
    "build_user_turn",
    "cut_at_stop_strings",
    "generate_until",
    "generation_options",
]
