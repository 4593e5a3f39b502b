"""One image + a multi-turn chat about it: the state the terminal chat and the web demo keep.

LLaVA-1.5 was trained with one image per conversation, placed (as ``<image>\\n``) at the start of the
first user turn; later turns are text only. Both front ends build their prompts here so they send the
model exactly what it was trained on, and a new image always starts a new conversation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..constants import IMAGE_PLACEHOLDER
from ..errors import PiipLlavaError


class ConversationError(PiipLlavaError, ValueError):
    """Something the user sent cannot be answered (empty question, conversation too long...)."""


def clean_question(text: str | None) -> str:
    """Strip whitespace and any literal ``<image>`` the user typed.

    The placeholder is where the image's visual tokens go; a user typing it would make the prompt's
    placeholder count disagree with the number of images, so it is removed rather than obeyed.
    """
    cleaned = (text or "").replace(IMAGE_PLACEHOLDER, "").strip()
    if not cleaned:
        raise ConversationError("the message is empty: type a question first.")
    return cleaned


@dataclass
class Conversation:
    """The current image (or none: text-only chat) and the finished (question, answer) turns."""

    image: Any = None
    turns: list[tuple[str, str]] = field(default_factory=list)

    def messages(self, question: str) -> list[dict]:
        """The prompt messages for asking ``question`` next (image placeholder on the first user turn)."""
        from ..inference import user_message

        out: list[dict] = []
        for k, (asked, answered) in enumerate(self.turns):
            out.append(user_message(asked, 1 if (k == 0 and self.image is not None) else 0))
            out.append({"role": "assistant", "content": answered})
        out.append(user_message(question, 1 if (not self.turns and self.image is not None) else 0))
        return out

    def images(self) -> list[Any]:
        return [] if self.image is None else [self.image]

    def add_turn(self, question: str, answer: str) -> None:
        self.turns.append((question, answer.strip()))

    def reset(self, image: Any = None) -> None:
        self.image = image
        self.turns = []


def context_length(generator) -> int | None:
    """The language model's maximum sequence length, when its config records one."""
    config = getattr(generator.model.config, "text_config", generator.model.config)
    return getattr(config, "max_position_embeddings", None)


def check_fits(generator, messages: Sequence[dict], images: Sequence[Any], max_new_tokens: int) -> int:
    """Return the prompt length in tokens; refuse a prompt that cannot fit the model's context.

    Without this, a long chat fails deep inside the model with a position-embedding index error; here
    the user is told why and what to do (start a new conversation).
    """
    length = len(generator.encode(messages, images))
    limit = context_length(generator)
    if limit is not None and length + max_new_tokens > limit:
        raise ConversationError(
            f"the conversation is {length} tokens and {max_new_tokens} new tokens were asked for, more than the "
            f"model's context of {limit} tokens: start a new conversation (or ask for fewer new tokens)."
        )
    return length
