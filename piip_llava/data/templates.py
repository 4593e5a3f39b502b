"""Conversation templates as data.

A template says how a conversation is written out as one string, which parts of that string the model is
trained to produce, and where generation stops. It is a frozen dataclass, picked by explicit name with
:func:`get_template` -- never guessed from a checkpoint folder name, because the same LLM weights are used
with different templates in different training stages (``plain`` for stage 1, ``vicuna_v1`` for stage 2).

The single source of truth is :meth:`ConversationTemplate.spans`: it renders a conversation into
``(text, supervised)`` pieces. Rendering for inference and tokenisation for training both walk those
pieces, so the prompt a model sees at inference is, by construction, the prefix it was trained on.

The ``vicuna_v1`` / ``llava_v1`` templates reproduce LLaVA's ``SeparatorStyle.TWO`` ``get_prompt()``
character for character, including its quirk that an *empty* message is written as ``"ROLE:"`` with no
space and no separator (LLaVA relies on that to write the generation prompt ``"... ASSISTANT:"``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..constants import IMAGE_PLACEHOLDER

USER = "user"
ASSISTANT = "assistant"
SYSTEM = "system"

_ROLE_ALIASES: Mapping[str, str] = {
    "human": USER,
    "user": USER,
    "gpt": ASSISTANT,
    "assistant": ASSISTANT,
    "system": SYSTEM,
}
"""LLaVA data says ``human``/``gpt``; chat APIs say ``user``/``assistant``. Both are accepted."""


@dataclass(frozen=True)
class Span:
    """A piece of rendered conversation text; ``supervised`` pieces are what the loss trains on."""

    text: str
    supervised: bool


@dataclass(frozen=True)
class Message:
    """One conversation turn with its role normalised to ``user`` / ``assistant`` / ``system``."""

    role: str
    content: str


def normalize_role(raw: str) -> str:
    """Map ``human``/``gpt``/``user``/``assistant``/``system`` to the canonical role, or raise ``ValueError``."""
    role = _ROLE_ALIASES.get(str(raw).strip().lower()) if isinstance(raw, str) else None
    if role is None:
        raise ValueError(f"unknown role {raw!r}; expected one of {sorted(_ROLE_ALIASES)}")
    return role


def to_messages(turns: Sequence[Mapping[str, object] | Message]) -> list[Message]:
    """Accept LLaVA turns (``{"from", "value"}``), chat turns (``{"role", "content"}``) or :class:`Message`."""
    messages: list[Message] = []
    for position, turn in enumerate(turns):
        if isinstance(turn, Message):
            messages.append(turn)
            continue
        if not isinstance(turn, Mapping):
            # ValueError, not TypeError: this is bad *data*, reported per sample by the caller.
            raise ValueError(f"turn {position} is a {type(turn).__name__}, expected an object")  # noqa: TRY004
        if "from" in turn:
            raw_role, content = turn.get("from"), turn.get("value")
        elif "role" in turn:
            raw_role, content = turn.get("role"), turn.get("content")
        else:
            raise ValueError(f"turn {position} has neither 'from'/'value' nor 'role'/'content' keys: {sorted(turn)}")
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise ValueError(f"turn {position} has a non-string value of type {type(content).__name__}")  # noqa: TRY004
        messages.append(Message(normalize_role(raw_role), content))
    return messages


@dataclass(frozen=True)
class ConversationTemplate:
    """How a conversation is written out, what is supervised, and where generation stops.

    A non-empty message is written ``prefix + content_prefix + content + suffix``. For the assistant,
    ``content_prefix + content + suffix`` is supervised (the model must learn to produce the answer and the
    end-of-turn marker) and ``assistant_trailer`` is not (e.g. the newline ChatML puts after ``<|im_end|>``:
    the model stops before it, so it never has to predict it).
    """

    name: str
    style: Literal["chat", "plain"]
    """``chat``: multi-turn with roles. ``plain``: LLaVA stage-1 captioning, ``<image>`` + caption + ``\\n``
    (the user's words are dropped; only its image placeholders are kept)."""
    system: str = ""
    system_format: str = "{system}"
    """How the system prompt is written; ``{system}`` is replaced by the prompt text."""
    user_prefix: str = ""
    user_content_prefix: str = ""
    user_suffix: str = ""
    assistant_prefix: str = ""
    assistant_content_prefix: str = ""
    assistant_suffix: str = ""
    assistant_trailer: str = ""
    empty_message: Literal["prefix_only", "full"] = "full"
    """``prefix_only``: an empty message is written as its prefix alone (LLaVA's ``get_prompt`` does this)."""
    stop_strings: tuple[str, ...] = ()
    """Strings that end generation (LLaVA's ``stop_str``)."""
    reserved_strings: tuple[str, ...] = ()
    """Text a message may not contain: role markers and separators. A message containing them would render
    into an ambiguous prompt (LLaVA's own masking silently zeroes such samples)."""
    llava_round_separators: tuple[str, str] | None = None
    """``(sep, sep2)`` of LLaVA's ``preprocess_v1`` split (``" ASSISTANT: "``, ``"</s>"``). When set, the
    tokeniser also runs LLaVA's own length check so samples LLaVA would silently zero are reported."""
    aliases: tuple[str, ...] = field(default=(), compare=False)

    # -- rendering -------------------------------------------------------------------------------------

    def _system_text(self, system: str | None) -> str:
        text = self.system if system is None else system
        if self.style == "plain":
            return text
        return self.system_format.format(system=text)

    def spans(self, messages: Sequence[Message], *, system: str | None = None) -> list[Span]:
        """Render ``messages`` (already validated: alternating, user first) into supervised/unsupervised spans."""
        if self.style == "plain":
            # LLaVA's preprocess_plain: the user's words are dropped and only its image placeholders are kept,
            # so the model learns "<image>" -> caption + "\n". Inference prompts are written the same way.
            out = []
            for message in messages:
                if message.role == USER:
                    out.append(Span(IMAGE_PLACEHOLDER * message.content.count(IMAGE_PLACEHOLDER), False))
                elif message.role == ASSISTANT:
                    out.append(Span(message.content + "\n", True))
            return [span for span in out if span.text]
        out = [Span(self._system_text(system), False)]
        for message in messages:
            if message.role == USER:
                if message.content or self.empty_message == "full":
                    text = self.user_prefix + self.user_content_prefix + message.content + self.user_suffix
                else:
                    text = self.user_prefix
                out.append(Span(text, False))
            elif message.role == ASSISTANT:
                out.append(Span(self.assistant_prefix, False))
                if message.content or self.empty_message == "full":
                    out.append(Span(self.assistant_content_prefix + message.content + self.assistant_suffix, True))
                    if self.assistant_trailer:
                        out.append(Span(self.assistant_trailer, False))
            else:
                raise ValueError(f"template {self.name!r}: a {message.role!r} message can only come first")
        return [span for span in out if span.text]

    def render_prompt(
        self,
        messages: Sequence[Mapping[str, object] | Message],
        add_generation_prompt: bool = True,
        *,
        system: str | None = None,
    ) -> str:
        """Write ``messages`` out as the prompt string; with ``add_generation_prompt`` end with the assistant cue.

        A leading ``system`` message replaces the template's default system prompt.
        """
        parsed = to_messages(messages)
        if parsed and parsed[0].role == SYSTEM:
            system, parsed = parsed[0].content, parsed[1:]
        if any(message.role == SYSTEM for message in parsed):
            raise ValueError("a system message can only be the first message")
        text = "".join(span.text for span in self.spans(parsed, system=system))
        if add_generation_prompt and self.style == "chat":
            text += self.assistant_prefix
        return text

    @property
    def stop_string(self) -> str | None:
        """The first stop string, or ``None`` (convenience for engines that take one)."""
        return self.stop_strings[0] if self.stop_strings else None


VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
LLAVA_V1_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
LLAMA3_SYSTEM = (
    "You are a helpful language and vision assistant. You are able to understand the visual content that the "
    "user provides, and assist the user with a variety of tasks using natural language."
)


def _vicuna_style(name: str, system: str, aliases: tuple[str, ...] = ()) -> ConversationTemplate:
    # LLaVA SeparatorStyle.TWO: system + " " + "USER: q " + "ASSISTANT: a</s>" ...
    return ConversationTemplate(
        name=name,
        style="chat",
        system=system,
        system_format="{system} ",
        user_prefix="USER:",
        user_content_prefix=" ",
        user_suffix=" ",
        assistant_prefix="ASSISTANT:",
        assistant_content_prefix=" ",
        assistant_suffix="</s>",
        empty_message="prefix_only",
        stop_strings=("</s>",),
        reserved_strings=("</s>", "ASSISTANT:"),
        llava_round_separators=(" ASSISTANT: ", "</s>"),
        aliases=aliases,
    )


PLAIN = ConversationTemplate(name="plain", style="plain", stop_strings=("\n",))
"""Stage 1 (feature alignment): the instruction is dropped, the model learns ``<image>`` -> caption + ``\\n``."""

VICUNA_V1 = _vicuna_style("vicuna_v1", VICUNA_SYSTEM, aliases=("v1",))
"""Stage 2 template of LLaVA-1.5 and PIIP-LLaVA (``--version v1``), and the eval template."""

LLAVA_V1 = _vicuna_style("llava_v1", LLAVA_V1_SYSTEM)
"""LLaVA's ``conv_llava_v1``: the same format with a "curious human" system prompt."""

CHATML = ConversationTemplate(
    name="chatml",
    style="chat",
    system="You are a helpful assistant.",
    system_format="<|im_start|>system\n{system}<|im_end|>\n",
    user_prefix="<|im_start|>user\n",
    user_suffix="<|im_end|>\n",
    assistant_prefix="<|im_start|>assistant\n",
    assistant_suffix="<|im_end|>",
    assistant_trailer="\n",
    stop_strings=("<|im_end|>",),
    reserved_strings=("<|im_start|>", "<|im_end|>", "<|endoftext|>"),
)
"""Qwen / SmolLM2 style."""

LLAMA_3 = ConversationTemplate(
    name="llama_3",
    style="chat",
    system=LLAMA3_SYSTEM,
    system_format="<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>",
    user_prefix="<|start_header_id|>user<|end_header_id|>\n\n",
    user_suffix="<|eot_id|>",
    assistant_prefix="<|start_header_id|>assistant<|end_header_id|>\n\n",
    assistant_suffix="<|eot_id|>",
    stop_strings=("<|eot_id|>",),
    reserved_strings=(
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
        "<|begin_of_text|>",
        "<|end_of_text|>",
    ),
)
"""Meta Llama-3 chat format; ``<|begin_of_text|>`` comes from the tokenizer as its BOS, not from the template."""

_TEMPLATES: Mapping[str, ConversationTemplate] = {t.name: t for t in (PLAIN, VICUNA_V1, LLAVA_V1, CHATML, LLAMA_3)}


def template_names() -> list[str]:
    """Every accepted name, aliases included."""
    names = set(_TEMPLATES)
    for template in _TEMPLATES.values():
        names.update(template.aliases)
    return sorted(names)


def get_template(name: str | ConversationTemplate) -> ConversationTemplate:
    """Return the template called ``name`` (or ``name`` itself if it already is a template)."""
    if isinstance(name, ConversationTemplate):
        return name
    if name in _TEMPLATES:
        return _TEMPLATES[name]
    for template in _TEMPLATES.values():
        if name in template.aliases:
            return template
    raise KeyError(f"unknown conversation template {name!r}; valid names: {', '.join(template_names())}")
