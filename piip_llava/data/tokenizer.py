"""Tokenizer loading, and text -> ids exactly as the released checkpoints were trained.

Why a separate *encoder* next to the Hugging Face tokenizer
-----------------------------------------------------------
LLaVA-1.5 (and PIIP-LLaVA, which uses its data code) tokenised with transformers 4.37's **slow**
SentencePiece ``LlamaTokenizer`` (``use_fast=False``, ``legacy=False``). transformers 5 no longer has that
class: its ``LlamaTokenizer`` is a ``tokenizers`` BPE converted from ``tokenizer.model`` and gives different
ids wherever text starts with a space or contains a run of spaces (``" Hello"`` -> ``[1, 15043]`` instead of
``[1, 29871, 15043]``; ``"a  b"`` -> ``'▁a','▁▁','b'`` instead of ``'▁a','▁','▁b'``). The released
checkpoints learnt LLaVA's ids, so training and prompting must produce those.

:class:`SentencePieceLlamaEncoder` therefore re-implements the slow tokenizer's algorithm on top of the
``sentencepiece`` library and the checkpoint's own ``tokenizer.model``:

* split the text on added/special tokens (``<s>``, ``</s>``, ``<unk>``, ``<image>``...), which map to their ids;
* ``legacy=False``: prepend ``"▁"`` to the whole text (SentencePiece's dummy prefix), replace any literal
  ``"▁"`` by a space, run SentencePiece *without* its own dummy prefix on each piece between special tokens,
  encoding pieces that start with whitespace behind an ``<unk>`` sentinel so SentencePiece keeps the leading
  ``"▁"``; drop a lone leading ``"▁"`` directly followed by a special token. Text right after a special token
  therefore gets no dummy prefix (``"</s>USER"`` -> ``'USER'``).
* ``legacy=True`` (the slow tokenizer's default when the config says nothing): every piece between special
  tokens is encoded with SentencePiece's dummy prefix.

Every other tokenizer (byte-level BPE such as Qwen/Llama-3/SmolLM2, or a Llama tokenizer that ships only a
``tokenizer.json``) is used through its Hugging Face tokenizer (:class:`HFTextEncoder`).

Which encoder is used is decided from the tokenizer's *files and class* (a ``tokenizer.model`` SentencePiece
BPE model and a Llama tokenizer class), never from a folder name, and can be forced with ``encoding=``.

The Hugging Face tokenizer is still returned and used for everything else (decoding, vocabulary size,
saving); both agree on every id, they only differ in how they split some strings.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from ..constants import IMAGE_PLACEHOLDER

logger = logging.getLogger(__name__)

SPIECE_UNDERLINE = "\u2581"

LLAMA_SPM_TOKENIZER_CLASSES = frozenset(
    {"LlamaTokenizer", "LlamaTokenizerFast", "CodeLlamaTokenizer", "CodeLlamaTokenizerFast"}
)
"""Tokenizer classes whose slow (reference) implementation is the SentencePiece algorithm reproduced here."""

Encoding = Literal["auto", "sentencepiece", "hf"]


@runtime_checkable
class TextEncoder(Protocol):
    """Turns text into ids the way the model was trained.

    ``encode`` handles text at the start of a chunk (the beginning of the prompt, or right after an image
    placeholder -- LLaVA tokenises each chunk between images on its own); ``encode_continuation`` handles text
    that directly follows other text in the same chunk. Neither adds BOS; ``bos_ids`` says what goes first.
    """

    name: str
    bos_ids: tuple[int, ...]
    special_ids: frozenset[int]
    """Ids of added/special tokens (text right after one of them may tokenise differently)."""
    llava_exact: bool
    """True when the ids reproduce LLaVA's reference (slow SentencePiece) tokenisation."""
    legacy: bool

    def encode(self, text: str) -> list[int]: ...

    def encode_continuation(self, text: str, *, after_special: bool = False) -> list[int]: ...


def _special_splitter(tokens: Sequence[str]) -> re.Pattern[str] | None:
    """Longest-match-first alternation, like the slow tokenizer's trie split."""
    tokens = sorted({t for t in tokens if t}, key=len, reverse=True)
    if not tokens:
        return None
    return re.compile("(" + "|".join(re.escape(t) for t in tokens) + ")")


class SentencePieceLlamaEncoder:
    """transformers-4.37 slow ``LlamaTokenizer`` tokenisation, reproduced with ``sentencepiece`` (see module doc)."""

    llava_exact = True

    def __init__(
        self,
        model_file: str | os.PathLike[str],
        *,
        added_tokens: Mapping[str, int],
        special_tokens: Sequence[str],
        legacy: bool,
        add_bos: bool = True,
        unk_token: str = "<unk>",
    ) -> None:
        self.model_file = os.fspath(model_file)
        self.added_tokens = dict(added_tokens)
        self.special_tokens = frozenset(special_tokens)
        self.legacy = bool(legacy)
        self.unk_token = unk_token
        self.add_bos = add_bos
        with open(self.model_file, "rb") as handle:
            self._model_bytes = handle.read()
        self._load()
        self.name = f"sentencepiece-llama(legacy={self.legacy})"

    def _load(self) -> None:
        import sentencepiece as spm
        from sentencepiece import sentencepiece_model_pb2

        proto = sentencepiece_model_pb2.ModelProto.FromString(self._model_bytes)
        self._with_prefix = spm.SentencePieceProcessor(model_proto=self._model_bytes)
        # The slow tokenizer switches SentencePiece's own dummy prefix off (legacy=False) and adds "▁" itself.
        proto.normalizer_spec.add_dummy_prefix = False
        self._raw = spm.SentencePieceProcessor(model_proto=proto.SerializeToString())
        self._unk_prefix_len = len(self._raw.encode(self.unk_token))
        self._lone_space_id = self._raw.piece_to_id(SPIECE_UNDERLINE)
        self._splitter = _special_splitter(list(self.added_tokens))
        bos_id = self._with_prefix.bos_id()
        self.bos_ids: tuple[int, ...] = (bos_id,) if self.add_bos and bos_id >= 0 else ()
        self.special_ids = frozenset(self.added_tokens.values())

    @property
    def model_bytes(self) -> bytes:
        """The SentencePiece model this encoder uses (written out by :func:`save_tokenizer`)."""
        return self._model_bytes

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for key in ("_with_prefix", "_raw", "_splitter"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._load()

    # -- the slow tokenizer's pieces ----------------------------------------------------------------------

    def _split(self, text: str) -> list[tuple[str, bool]]:
        if self._splitter is None:
            return [(text, False)] if text else []
        out = []
        for position, piece in enumerate(self._splitter.split(text)):
            if piece:
                out.append((piece, position % 2 == 1))
        return out

    def _encode_piece(self, piece: str) -> list[int]:
        """``LlamaTokenizer._tokenize`` (legacy=False): keep a leading space by encoding behind ``<unk>``."""
        if not piece.startswith((SPIECE_UNDERLINE, " ")):
            return self._raw.encode(piece)
        ids = self._raw.encode(self.unk_token + piece)
        return ids[self._unk_prefix_len :] if len(ids) >= self._unk_prefix_len else ids

    def _encode(self, text: str, *, at_start: bool, after_special: bool = False) -> list[int]:
        if not text:
            return []
        if self.legacy:
            ids: list[int] = []
            for index, (piece, is_special) in enumerate(self._split(text)):
                if is_special:
                    ids.append(self.added_tokens[piece])
                elif at_start or after_special or index > 0:
                    ids.extend(self._with_prefix.encode(piece))
                else:  # text continuing a chunk: no dummy prefix of its own
                    ids.extend(self._encode_piece(piece))
            return ids
        text = text.replace(SPIECE_UNDERLINE, " ")
        if at_start:
            text = SPIECE_UNDERLINE + text
        ids = []
        kinds: list[bool] = []
        for piece, is_special in self._split(text):
            if is_special:
                ids.append(self.added_tokens[piece])
                kinds.append(piece in self.special_tokens)
            else:
                encoded = self._encode_piece(piece)
                ids.extend(encoded)
                kinds.extend([False] * len(encoded))
        if at_start and len(ids) > 1 and ids[0] == self._lone_space_id and kinds[1]:
            ids = ids[1:]
        return ids

    def encode(self, text: str) -> list[int]:
        """``tokenizer(text).input_ids`` of the slow tokenizer, without BOS."""
        return self._encode(text, at_start=True)

    def encode_continuation(self, text: str, *, after_special: bool = False) -> list[int]:
        """Ids of ``text`` when it directly follows other text of the same chunk.

        ``after_special``: the preceding token is a special token (legacy mode gives such text a dummy prefix).
        """
        return self._encode(text, at_start=False, after_special=after_special)

    def __repr__(self) -> str:
        return f"SentencePieceLlamaEncoder({self.model_file!r}, legacy={self.legacy})"


class HFTextEncoder:
    """Encode with the Hugging Face tokenizer itself (any tokenizer that is not a Llama SentencePiece one)."""

    llava_exact = False

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.legacy = bool(getattr(tokenizer, "legacy", True))
        self.name = f"hf({type(tokenizer).__name__})"
        self.bos_ids = _leading_special_ids(tokenizer)
        self.special_ids = frozenset(tokenizer.get_added_vocab().values()) | frozenset(tokenizer.all_special_ids)

    def encode(self, text: str) -> list[int]:
        if not text:
            return []
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_continuation(self, text: str, *, after_special: bool = False) -> list[int]:
        # Byte-level BPE tokenizers have no dummy prefix, so continuing text encodes like fresh text. Tokenizers
        # for which that is not true are caught by the whole-prompt check in ``preprocess``.
        return self.encode(text)

    def __repr__(self) -> str:
        return f"HFTextEncoder({type(self.tokenizer).__name__})"


def _leading_special_ids(tokenizer) -> tuple[int, ...]:
    """The ids the tokenizer puts in front of a sequence (BOS), found by comparing with/without specials."""
    probe = "a"
    with_special = list(tokenizer(probe, add_special_tokens=True)["input_ids"])
    without = list(tokenizer(probe, add_special_tokens=False)["input_ids"])
    for start in range(len(with_special) - len(without) + 1):
        if with_special[start : start + len(without)] == without:
            return tuple(with_special[:start])
    return ()


@dataclass(frozen=True, eq=False)
class LoadedTokenizer:
    """The Hugging Face tokenizer plus what the data pipeline needs to use it correctly."""

    tokenizer: object
    """The Hugging Face tokenizer (with ``<image>`` added and a pad token set)."""
    encoder: TextEncoder
    """How text becomes ids for training and prompting (see module doc)."""
    image_token_id: int
    """Id of the in-vocabulary ``<image>`` token; the model fills these positions with visual features."""
    pad_token_id: int
    eos_token_id: int | None

    @property
    def vocab_size(self) -> int:
        """Size the LLM's embedding matrix must have (``len(tokenizer)``, added tokens included)."""
        return len(self.tokenizer)

    def save_pretrained(self, directory: str | os.PathLike[str]) -> None:
        """Save so that :func:`load_tokenizer` on ``directory`` gives the same ids (see :func:`save_tokenizer`)."""
        save_tokenizer(self, directory)


def save_tokenizer(loaded: LoadedTokenizer, directory: str | os.PathLike[str]) -> None:
    """Save the Hugging Face tokenizer plus what the encoder needs to be chosen again on load.

    transformers 5 saves a Llama tokenizer as ``tokenizer.json`` only, without ``tokenizer.model`` and without
    the ``legacy`` flag; loaded back, its ids would silently become transformers 5's instead of LLaVA's. So
    for the SentencePiece encoder the model file is written next to it and ``legacy`` / ``add_bos_token`` /
    ``tokenizer_class`` are recorded in ``tokenizer_config.json``.
    """
    directory = os.fspath(directory)
    loaded.tokenizer.save_pretrained(directory)
    encoder = loaded.encoder
    if not isinstance(encoder, SentencePieceLlamaEncoder):
        return
    with open(os.path.join(directory, "tokenizer.model"), "wb") as handle:
        handle.write(encoder.model_bytes)
    config_path = os.path.join(directory, "tokenizer_config.json")
    config = _read_json(config_path)
    config["legacy"] = encoder.legacy
    config["add_bos_token"] = bool(encoder.bos_ids)
    if config.get("tokenizer_class") not in LLAMA_SPM_TOKENIZER_CLASSES:
        config["tokenizer_class"] = "LlamaTokenizer"
    with open(config_path, "w", encoding="utf-8") as handle:
        json.dump(config, handle, indent=2, ensure_ascii=False)
        handle.write("\n")


def _read_json(path: str) -> dict:
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    return data if isinstance(data, dict) else {}


def _is_sentencepiece_bpe(model_file: str) -> bool:
    from sentencepiece import sentencepiece_model_pb2

    with open(model_file, "rb") as handle:
        proto = sentencepiece_model_pb2.ModelProto.FromString(handle.read())
    return proto.trainer_spec.model_type == sentencepiece_model_pb2.TrainerSpec.BPE


def choose_encoding(tokenizer_dir: str, tokenizer) -> tuple[Literal["sentencepiece", "hf"], str]:
    """Pick the encoder from the tokenizer's files and class; returns the choice and the reason."""
    config = _read_json(os.path.join(tokenizer_dir, "tokenizer_config.json"))
    class_name = config.get("tokenizer_class") or type(tokenizer).__name__
    model_file = getattr(tokenizer, "vocab_file", None) or os.path.join(tokenizer_dir, "tokenizer.model")
    if class_name not in LLAMA_SPM_TOKENIZER_CLASSES:
        return "hf", f"tokenizer class {class_name} is not a Llama SentencePiece tokenizer"
    if not (isinstance(model_file, str) and os.path.isfile(model_file)):
        return "hf", f"{class_name} without a tokenizer.model file: slow-tokenizer ids cannot be reproduced"
    if not _is_sentencepiece_bpe(model_file):
        return "hf", f"{model_file} is not a SentencePiece BPE model"
    return "sentencepiece", f"{class_name} with SentencePiece BPE model {model_file}"


def _resolve_dir(path: str | os.PathLike[str]) -> str:
    path = os.fspath(path)
    if os.path.isdir(path):
        return path
    if os.path.exists(path):
        raise ValueError(f"tokenizer path {path!r} is a file; pass the folder that holds the tokenizer files")
    from huggingface_hub import snapshot_download

    return snapshot_download(
        repo_id=path,
        allow_patterns=[
            "tokenizer*",
            "special_tokens_map.json",
            "added_tokens.json",
            "*.model",
            "vocab*",
            "merges.txt",
        ],
    )


def load_tokenizer(
    path: str | os.PathLike[str],
    model_max_length: int = 2048,
    padding_side: Literal["right", "left"] = "right",
    *,
    encoding: Encoding = "auto",
    image_token: str = IMAGE_PLACEHOLDER,
) -> LoadedTokenizer:
    """Load the tokenizer at ``path`` (folder or Hub id) for PIIP-LLaVA.

    * adds ``image_token`` as a special token (reused if the vocabulary already has it); the LLM's embedding
      matrix must then be resized to :attr:`LoadedTokenizer.vocab_size`;
    * sets a pad token if there is none: ``unk`` when the vocabulary has one (what LLaVA does for Vicuna),
      else ``eos``, else a new ``<pad>`` token. Padding is never used to build attention masks here (the collator
      uses lengths), so pad == eos is safe;
    * picks the text encoder (``encoding="auto"``: see :func:`choose_encoding`).
    """
    from transformers import AutoTokenizer

    tokenizer_dir = _resolve_dir(path)
    tokenizer = AutoTokenizer.from_pretrained(
        tokenizer_dir, model_max_length=model_max_length, padding_side=padding_side
    )
    if image_token in tokenizer.get_added_vocab():
        image_token_id = tokenizer.get_added_vocab()[image_token]
    else:
        tokenizer.add_special_tokens({"extra_special_tokens": [image_token]}, replace_extra_special_tokens=False)
        image_token_id = tokenizer.convert_tokens_to_ids(image_token)
    if tokenizer.pad_token is None:
        if tokenizer.unk_token is not None:
            tokenizer.pad_token = tokenizer.unk_token
        elif tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        else:
            tokenizer.add_special_tokens({"pad_token": "<pad>"})

    if encoding == "auto":
        encoding, reason = choose_encoding(tokenizer_dir, tokenizer)
        if encoding == "hf" and type(tokenizer).__name__ in LLAMA_SPM_TOKENIZER_CLASSES:
            logger.warning(
                "tokenizer %s: %s; its ids differ from LLaVA's wherever text has leading or repeated spaces",
                tokenizer_dir,
                reason,
            )
        else:
            logger.info("tokenizer %s: using %s encoding (%s)", tokenizer_dir, encoding, reason)
    if encoding == "sentencepiece":
        config = _read_json(os.path.join(tokenizer_dir, "tokenizer_config.json"))
        model_file = getattr(tokenizer, "vocab_file", None) or os.path.join(tokenizer_dir, "tokenizer.model")
        if not os.path.isfile(model_file):
            raise FileNotFoundError(f"encoding='sentencepiece' needs {model_file}")
        legacy = config.get("legacy")
        if legacy is None:
            legacy = True  # transformers 4.x slow LlamaTokenizer default when the config does not say
        encoder: TextEncoder = SentencePieceLlamaEncoder(
            model_file,
            added_tokens=tokenizer.get_added_vocab(),
            special_tokens=tokenizer.all_special_tokens,
            legacy=bool(legacy),
            add_bos=bool(config.get("add_bos_token", True)),
            unk_token=tokenizer.unk_token or "<unk>",
        )
    elif encoding == "hf":
        encoder = HFTextEncoder(tokenizer)
    else:
        raise ValueError(f"encoding must be 'auto', 'sentencepiece' or 'hf', got {encoding!r}")
    return LoadedTokenizer(
        tokenizer=tokenizer,
        encoder=encoder,
        image_token_id=int(image_token_id),
        pad_token_id=int(tokenizer.pad_token_id),
        eos_token_id=tokenizer.eos_token_id,
    )
