"""Training data: LLaVA-format records -> conversation templates -> tokens + labels -> batches.

Modules, one concern each:

* :mod:`.templates` -- conversation templates as data (``get_template``).
* :mod:`.tokenizer` -- ``load_tokenizer``: ``<image>`` token, pad token, and a text encoder that reproduces
  LLaVA's slow SentencePiece tokenisation for Llama/Vicuna.
* :mod:`.preprocess` -- ``tokenize_conversation`` (ids + labels) and ``tokenize_prompt_for_generation``.
* :mod:`.errors` -- ``BadSampleError`` reasons and the ``DataReport`` of skipped samples.
* :mod:`.records` -- compact byte-offset index over ``.json`` / ``.jsonl`` files.
* :mod:`.dataset` -- ``LazySupervisedDataset`` (+ ``SupervisedDataConfig``).
* :mod:`.collator` -- ``DataCollatorForSupervisedDataset``.
* :mod:`.sampler` -- ``LengthGroupedSampler`` (LLaVA's ``group_by_modality_length``).

The dataset module imports the image loader from ``piip_llava.vision``; it is imported lazily here so the
text-only parts stay importable on their own.
"""

from .collator import DataCollatorForSupervisedDataset
from .errors import REASONS, BadSampleError, DataReport
from .preprocess import TokenizedSample, tokenize_conversation, tokenize_prompt, tokenize_prompt_for_generation
from .sampler import LengthGroupedSampler
from .templates import ConversationTemplate, get_template, template_names
from .tokenizer import LoadedTokenizer, load_tokenizer, save_tokenizer

__all__ = [
    "REASONS",
    "BadSampleError",
    "ConversationTemplate",
    "DataCollatorForSupervisedDataset",
    "DataReport",
    "LazySupervisedDataset",
    "LengthGroupedSampler",
    "LoadedTokenizer",
    "SupervisedDataConfig",
    "TokenizedSample",
    "get_template",
    "load_tokenizer",
    "save_tokenizer",
    "template_names",
    "tokenize_conversation",
    "tokenize_prompt",
    "tokenize_prompt_for_generation",
]


def __getattr__(name: str):
    if name in ("LazySupervisedDataset", "SupervisedDataConfig"):
        from . import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
