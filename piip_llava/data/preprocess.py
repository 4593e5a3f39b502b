"""LLaVA conversations -> ``input_ids`` + ``labels``; prompts -> ``input_ids`` for generation.

How labels are made, and why it is not LLaVA's algorithm
--------------------------------------------------------
LLaVA tokenises the whole rendered prompt, then *re-tokenises* each round to guess how many tokens belong to
the instruction (``len(tok(round)) - 2``, ``-1`` for rounds after the first), and when its guess does not add
up it silently sets every label to -100. Here the template renders the conversation as spans that are
supervised or not (:meth:`ConversationTemplate.spans`); each span is tokenised in turn and labelled by
construction. The result is then checked against the tokenisation of the whole prompt, so the ids are the ones
a model sees when the same prompt is tokenised at inference -- for the Vicuna/LLaVA checkpoints, exactly
LLaVA's ids and labels (the fixture tests compare every case).

Images: each ``<image>`` placeholder becomes ``num_image_tokens`` copies of ``image_token_id`` (LLaVA uses
one ``-200``; ``image_token_id=-200, num_image_tokens=1`` gives LLaVA's arrays). As in LLaVA's
``tokenizer_image_token``, the text between placeholders is tokenised chunk by chunk, each chunk as if it
started a prompt (so ``"<image>\\nWhat"`` gives ``-200, '▁', '\\n', 'What'``).

Failures are :class:`BadSampleError` with a reason code; see :mod:`piip_llava.data.errors`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..constants import IGNORE_INDEX, IMAGE_PLACEHOLDER
from .errors import BadSampleError
from .templates import ASSISTANT, SYSTEM, USER, ConversationTemplate, Message, Span, get_template, to_messages
from .tokenizer import LoadedTokenizer, TextEncoder


@dataclass(frozen=True)
class TokenizedSample:
    """One training sample: ``labels`` is ``IGNORE_INDEX`` wherever the loss must not look."""

    input_ids: list[int]
    labels: list[int]
    num_images: int = 0
    """Number of image placeholder runs in ``input_ids``."""
    num_truncated_tokens: int = 0
    """Tokens dropped from the end to fit ``max_length`` (reported by the dataset, never silent)."""

    def __len__(self) -> int:
        return len(self.input_ids)


def _encoder_of(tokenizer: LoadedTokenizer | TextEncoder) -> TextEncoder:
    if isinstance(tokenizer, LoadedTokenizer):
        return tokenizer.encoder
    if isinstance(tokenizer, TextEncoder):
        return tokenizer
    raise TypeError(
        f"expected a LoadedTokenizer (from piip_llava.data.load_tokenizer) or a TextEncoder, got "
        f"{type(tokenizer).__name__}; a bare Hugging Face tokenizer does not reproduce LLaVA's ids for Llama models"
    )


def _image_token_id_of(tokenizer: LoadedTokenizer | TextEncoder, image_token_id: int | None) -> int:
    _encoder_of(tokenizer)  # type check first, for a clear message
    if image_token_id is not None:
        return image_token_id
    if isinstance(tokenizer, LoadedTokenizer):
        return tokenizer.image_token_id
    raise ValueError("image_token_id is required when tokenizer is a bare TextEncoder")


def _pad_token_id_of(tokenizer: LoadedTokenizer | TextEncoder, pad_token_id: int | None) -> int | None:
    if pad_token_id is None and isinstance(tokenizer, LoadedTokenizer):
        return tokenizer.pad_token_id
    return pad_token_id


# -- prompts ---------------------------------------------------------------------------------------------


def tokenize_prompt(
    prompt: str,
    tokenizer: LoadedTokenizer | TextEncoder,
    *,
    image_token_id: int | None = None,
    num_image_tokens: int = 1,
) -> list[int]:
    """BOS + the prompt with every ``<image>`` expanded to ``num_image_tokens`` image ids.

    LLaVA's ``tokenizer_image_token``: each chunk between placeholders is tokenised on its own.
    """
    encoder = _encoder_of(tokenizer)
    image_token_id = _image_token_id_of(tokenizer, image_token_id)
    if num_image_tokens < 1:
        raise ValueError(f"num_image_tokens must be >= 1, got {num_image_tokens}")
    ids = list(encoder.bos_ids)
    for index, chunk in enumerate(prompt.split(IMAGE_PLACEHOLDER)):
        if index:
            ids.extend([image_token_id] * num_image_tokens)
        ids.extend(encoder.encode(chunk))
    return ids


def tokenize_prompt_for_generation(
    messages: Sequence[Mapping[str, object] | Message],
    tokenizer: LoadedTokenizer | TextEncoder,
    template: str | ConversationTemplate,
    *,
    image_token_id: int | None = None,
    num_image_tokens: int = 1,
    num_images: int | None = None,
    system: str | None = None,
) -> list[int]:
    """Render ``messages`` with ``template`` (ending in the assistant cue) and tokenise as in training.

    ``messages``: ``[{"role": "user", "content": "<image>\\nWhat is this?"}]`` (LLaVA ``from``/``value`` turns
    work too). With ``num_images`` given, the number of ``<image>`` placeholders must match it.
    """
    prompt = get_template(template).render_prompt(messages, add_generation_prompt=True, system=system)
    found = prompt.count(IMAGE_PLACEHOLDER)
    if num_images is not None and found != num_images:
        raise ValueError(
            f"the prompt has {found} {IMAGE_PLACEHOLDER} placeholder(s) but {num_images} image(s) were given"
        )
    return tokenize_prompt(prompt, tokenizer, image_token_id=image_token_id, num_image_tokens=num_image_tokens)


# -- conversations ---------------------------------------------------------------------------------------


def _move_image_to_front(text: str) -> str:
    """LLaVA's ``preprocess_multimodal``: drop the tags, strip, put one ``<image>\\n`` in front, strip again."""
    return (IMAGE_PLACEHOLDER + "\n" + text.replace(IMAGE_PLACEHOLDER, "").strip()).strip()


def normalize_conversation(
    conversations: object,
    template: ConversationTemplate,
    *,
    has_image: bool,
) -> tuple[list[Message], str | None]:
    """Validate a LLaVA ``conversations`` list and bring it to the form the template renders.

    Returns the messages (user first, alternating, ending with the assistant) and a system prompt override
    (a leading ``system`` turn) or ``None``. Applies LLaVA's ``preprocess_multimodal`` to the turn holding the
    image and, like LLaVA, drops a leading assistant turn.
    """
    if not isinstance(conversations, list) or not conversations:
        raise BadSampleError("empty_conversation", "'conversations' is missing or empty")
    try:
        messages = to_messages(conversations)
    except ValueError as error:
        reason = "unknown_role" if "unknown role" in str(error) else "malformed_record"
        raise BadSampleError(reason, str(error)) from error

    system = None
    if messages[0].role == SYSTEM:
        system, messages = messages[0].content, messages[1:]
    if any(m.role == SYSTEM for m in messages):
        raise BadSampleError("roles_not_alternating", "a system turn can only be the first turn")

    tags = [m.content.count(IMAGE_PLACEHOLDER) for m in messages]
    if not has_image and sum(tags):
        raise BadSampleError("image_tag_without_image", f"{sum(tags)} {IMAGE_PLACEHOLDER} tag(s) but no 'image' field")
    if has_image:
        if sum(tags) == 0:
            raise BadSampleError("image_without_tag", f"the record has an image but no {IMAGE_PLACEHOLDER} tag")
        if sum(tags) > 1:
            raise BadSampleError("too_many_image_tags", f"{sum(tags)} {IMAGE_PLACEHOLDER} tags for 1 image")
        if any(count and m.role == ASSISTANT for count, m in zip(tags, messages)):
            raise BadSampleError("image_tag_in_answer", f"{IMAGE_PLACEHOLDER} in an assistant ('gpt') turn")
        messages = [
            Message(m.role, _move_image_to_front(m.content)) if IMAGE_PLACEHOLDER in m.content else m for m in messages
        ]

    if template.style == "plain":
        if not has_image or len(messages) != 2 or [m.role for m in messages] != [USER, ASSISTANT]:
            raise BadSampleError(
                "template_mismatch",
                "the 'plain' template needs an image and exactly one human turn followed by one gpt turn, got "
                f"{[m.role for m in messages]}{'' if has_image else ' without an image'}",
            )
        return messages, system

    if messages and messages[0].role == ASSISTANT:
        messages = messages[1:]  # LLaVA's preprocess drops a conversation's leading gpt turn
    if not messages:
        raise BadSampleError("empty_conversation", "no turns left after dropping the leading gpt turn")
    for position, message in enumerate(messages):
        expected = USER if position % 2 == 0 else ASSISTANT
        if message.role != expected:
            raise BadSampleError(
                "roles_not_alternating", f"turn {position} is from {message.role!r}, expected {expected!r}"
            )
    if messages[-1].role == USER:
        raise BadSampleError("ends_with_user_turn", "the last turn is a human turn with no gpt answer")
    for position, message in enumerate(messages):
        for reserved in template.reserved_strings:
            if reserved in message.content:
                raise BadSampleError(
                    "reserved_text",
                    f"turn {position} ({message.role}) contains {reserved!r}, which template {template.name!r} uses "
                    "as a separator or role marker; the rendered prompt would be ambiguous",
                )
    return messages, system


def _merge_spans(spans: Sequence[Span]) -> list[Span]:
    """Join neighbours with the same supervision so every boundary we tokenise across is a real one."""
    merged: list[Span] = []
    for span in spans:
        if merged and merged[-1].supervised == span.supervised:
            merged[-1] = Span(merged[-1].text + span.text, span.supervised)
        else:
            merged.append(span)
    return merged


def _build(
    spans: Sequence[Span], encoder: TextEncoder, image_token_id: int, num_image_tokens: int
) -> tuple[list[int], list[int], int]:
    ids = list(encoder.bos_ids)
    labels = [IGNORE_INDEX] * len(ids)
    num_images = 0
    starts_chunk = True
    for span in _merge_spans(spans):
        for index, piece in enumerate(span.text.split(IMAGE_PLACEHOLDER)):
            if index:
                ids.extend([image_token_id] * num_image_tokens)
                labels.extend([IGNORE_INDEX] * num_image_tokens)
                num_images += 1
                starts_chunk = True
            if not piece:
                continue
            if starts_chunk:
                tokens = encoder.encode(piece)
            else:
                tokens = encoder.encode_continuation(piece, after_special=bool(ids) and ids[-1] in encoder.special_ids)
            starts_chunk = False
            ids.extend(tokens)
            labels.extend(tokens if span.supervised else [IGNORE_INDEX] * len(tokens))
    return ids, labels, num_images


def _llava_length_check(
    prompt: str,
    ids: list[int],
    template: ConversationTemplate,
    encoder: TextEncoder,
    *,
    has_image: bool,
    image_token_id: int,
    num_image_tokens: int,
    pad_token_id: int | None,
    max_length: int | None,
) -> None:
    """Re-run LLaVA ``preprocess_v1``'s round-length bookkeeping and raise where LLaVA would zero the labels.

    Our labels do not depend on it; it only flags samples that LLaVA (and so the released checkpoints) never
    learnt from, e.g. a literal ``<unk>`` (= the pad id, which LLaVA's ``total_len`` does not count).
    """
    sep, sep2 = template.llava_round_separators  # type: ignore[misc]
    # LLaVA's sequence has one sentinel per image; text-only samples were truncated at tokenisation.
    llava_ids = ids
    if num_image_tokens > 1:
        llava_ids = [t for i, t in enumerate(ids) if t != image_token_id or i == 0 or ids[i - 1] != image_token_id]
    if not has_image and max_length is not None:
        llava_ids = llava_ids[:max_length]
    total_len = sum(1 for t in llava_ids if t != pad_token_id)

    def count(text: str) -> int:
        return len(tokenize_prompt(text, encoder, image_token_id=image_token_id, num_image_tokens=1))

    cur_len = 1
    for index, round_text in enumerate(prompt.split(sep2)):
        if round_text == "":
            break
        parts = round_text.split(sep)
        if len(parts) != 2:
            break
        round_len = count(round_text)
        if index != 0 and not encoder.legacy:
            round_len -= 1
        cur_len += round_len
    if (max_length is None or cur_len < max_length) and cur_len != total_len:
        raise BadSampleError(
            "llava_mismatch",
            f"LLaVA's preprocess_v1 would count {cur_len} tokens vs. {total_len} and silently zero all labels "
            "(typically literal special-token text such as the pad token in a message)",
        )


def _first_difference(a: Sequence[int], b: Sequence[int]) -> int:
    for index, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return index
    return min(len(a), len(b))


def tokenize_conversation(
    conversations: object,
    tokenizer: LoadedTokenizer | TextEncoder,
    template: str | ConversationTemplate,
    *,
    has_image: bool,
    image_token_id: int | None = None,
    num_image_tokens: int = 1,
    max_length: int | None = None,
    sample_id: str | None = None,
    pad_token_id: int | None = None,
    verify: bool = True,
) -> TokenizedSample:
    """Tokenise one LLaVA ``conversations`` list for training.

    Args:
        conversations: ``[{"from": "human"|"gpt", "value": str}, ...]``.
        tokenizer: from :func:`~piip_llava.data.tokenizer.load_tokenizer` (or its ``encoder``).
        template: a template or its name (``plain``, ``vicuna_v1``/``v1``, ``llava_v1``, ``chatml``, ``llama_3``).
        has_image: whether the record has an image (LLaVA: ``'image' in record``).
        image_token_id / num_image_tokens: each ``<image>`` becomes that many copies of that id.
        max_length: truncate to this many tokens (``None``: no truncation). LLaVA truncates text-only samples
            here and image samples later, in the collator (and again after expanding the image in the model);
            the sequence trained on is the same: the first ``max_length`` tokens. Truncation that would cut
            image placeholders, or leave no supervised token, raises instead.
        sample_id: used in error messages.
        pad_token_id: for the LLaVA length check (default: the tokenizer's pad id).
        verify: check the span-by-span ids against the whole-prompt tokenisation (cheap; keep it on).

    Raises:
        BadSampleError: with ``reason`` and ``sample_id`` (see :data:`~piip_llava.data.errors.REASONS`).
    """
    try:
        return _tokenize_conversation(
            conversations,
            tokenizer,
            get_template(template),
            has_image=has_image,
            image_token_id=_image_token_id_of(tokenizer, image_token_id),
            num_image_tokens=num_image_tokens,
            max_length=max_length,
            pad_token_id=_pad_token_id_of(tokenizer, pad_token_id),
            verify=verify,
        )
    except BadSampleError as error:
        raise error.with_context(sample_id=sample_id) from None


def _tokenize_conversation(
    conversations: object,
    tokenizer: LoadedTokenizer | TextEncoder,
    template: ConversationTemplate,
    *,
    has_image: bool,
    image_token_id: int,
    num_image_tokens: int,
    max_length: int | None,
    pad_token_id: int | None,
    verify: bool,
) -> TokenizedSample:
    encoder = _encoder_of(tokenizer)
    if num_image_tokens < 1:
        raise ValueError(f"num_image_tokens must be >= 1, got {num_image_tokens}")
    messages, system = normalize_conversation(conversations, template, has_image=has_image)
    spans = template.spans(messages, system=system)
    ids, labels, num_images = _build(spans, encoder, image_token_id, num_image_tokens)

    prompt = "".join(span.text for span in spans)
    if verify:
        whole = tokenize_prompt(prompt, encoder, image_token_id=image_token_id, num_image_tokens=num_image_tokens)
        if whole != ids:
            at = _first_difference(whole, ids)
            raise BadSampleError(
                "tokenization_mismatch",
                f"span-by-span ids differ from whole-prompt ids at token {at} ({ids[at : at + 5]} vs. "
                f"{whole[at : at + 5]}) with encoder {encoder.name}; this template/tokenizer pair tokenises "
                f"differently across a supervision boundary (are template {template.name!r}'s markers special "
                "tokens of this tokenizer?)",
            )

    if all(label == IGNORE_INDEX for label in labels):
        empty = [i for i, m in enumerate(messages) if m.role == ASSISTANT and not m.content]
        why = f"the assistant reply in turn {empty[0]} is empty" if empty else "nothing is supervised"
        raise BadSampleError("no_supervised_tokens", f"all labels would be ignored: {why}")

    if template.llava_round_separators is not None and encoder.llava_exact:
        _llava_length_check(
            prompt,
            ids,
            template,
            encoder,
            has_image=has_image,
            image_token_id=image_token_id,
            num_image_tokens=num_image_tokens,
            pad_token_id=pad_token_id,
            max_length=max_length,
        )

    dropped = 0
    if max_length is not None and len(ids) > max_length:
        if image_token_id in ids[max_length:]:
            first = ids.index(image_token_id)
            raise BadSampleError(
                "image_truncated",
                f"{len(ids)} tokens with image placeholders at {first}.. do not fit max_length={max_length}; "
                "truncating would cut the image",
            )
        dropped = len(ids) - max_length
        ids, labels = ids[:max_length], labels[:max_length]
        if all(label == IGNORE_INDEX for label in labels):
            raise BadSampleError(
                "no_supervised_tokens",
                f"the answer starts after max_length={max_length} (sample has {len(ids) + dropped} tokens); "
                "truncation would leave no supervised token",
            )
    return TokenizedSample(ids, labels, num_images=num_images, num_truncated_tokens=dropped)
