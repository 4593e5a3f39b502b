"""OpenAI chat-completions wire format: parse and validate requests, build responses and chunks.

Kept apart from the FastAPI app so the rules (what is accepted, what each error says) read in one place
and are testable without a server. Every refusal is an :class:`ApiError` carrying the HTTP status and
an OpenAI-style ``{"error": {"message", "type", "code", "param"}}`` body, so any OpenAI client shows
the server's own explanation instead of a bare status code.
"""

from __future__ import annotations

import base64
import binascii
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ..constants import IMAGE_PLACEHOLDER


class ApiError(Exception):
    """A request the server refuses; ``status`` is the HTTP code, the rest goes into the error body."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "code": self.code, "param": self.param}}


@dataclass(frozen=True)
class ApiLimits:
    """What a request may ask for; the defaults suit a single-GPU server."""

    default_max_tokens: int = 256
    max_tokens_limit: int = 2048
    max_images: int = 4
    """Images per request: LLaVA-1.5 is trained with one; a few still work, dozens would exhaust memory."""
    default_temperature: float = 0.0
    """Used when a request sends no temperature: greedy decoding, the most reliable for VQA-style answers."""


@dataclass
class ChatRequest:
    model: str
    messages: list[dict]
    """Prompt messages in the :mod:`piip_llava.inference` form (``<image>`` placeholders in user turns)."""
    images: list[Any]
    """Decoded RGB images, in placeholder order."""
    max_tokens: int
    temperature: float
    top_p: float
    stream: bool = False
    include_usage: bool = False
    extra: dict = field(default_factory=dict)


# -- request parsing -----------------------------------------------------------------------------------------


def _number(body: dict, name: str, default: float, low: float, high: float, *, low_open: bool = False) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ApiError(400, f"'{name}' must be a number, got {value!r}.", code="invalid_value", param=name)
    if value < low or value > high or (low_open and value == low):
        bracket = "(" if low_open else "["
        raise ApiError(400, f"'{name}' must be in {bracket}{low}, {high}], got {value}.", code="invalid_value", param=name)
    return float(value)


def _integer(body: dict, names: tuple[str, ...], default: int, high: int) -> int:
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise ApiError(400, f"'{name}' must be an integer, got {value!r}.", code="invalid_value", param=name)
        if not 1 <= value <= high:
            raise ApiError(400, f"'{name}' must be between 1 and {high}, got {value}.", code="invalid_value", param=name)
        return value
    return default


def decode_data_url(url: Any, where: str, *, max_pixels: int | None = None):
    """Decode a ``data:image/...;base64,...`` URL to an RGB image, or raise an :class:`ApiError` saying why."""
    from ..vision.image_processor import DEFAULT_MAX_PIXELS, ImageLoadError, load_image
    from .images import refusal_reason

    if not isinstance(url, str) or not url:
        raise ApiError(400, f"{where}: 'url' must be a non-empty string.", code="invalid_image_url", param=where)
    if not url.startswith("data:"):
        shown = url if len(url) <= 60 else url[:57] + "..."
        raise ApiError(400, f"{where}: only base64 data URLs (data:image/png;base64,...) are accepted; this server does "
                            f"not download images (got {shown!r}).", code="invalid_image_url", param=where)
    header, comma, payload = url[5:].partition(",")
    if not comma:
        raise ApiError(400, f"{where}: malformed data URL (no ',' after the header).", code="invalid_image_url", param=where)
    parts = header.split(";")
    media_type = parts[0].strip().lower()
    if "base64" not in [p.strip().lower() for p in parts[1:]]:
        raise ApiError(400, f"{where}: the data URL must be base64-encoded (data:image/...;base64,...).",
                       code="invalid_image_url", param=where)
    if media_type and not media_type.startswith("image/") and media_type != "application/octet-stream":
        raise ApiError(400, f"{where}: the data URL's media type is {media_type!r}, not an image.",
                       code="invalid_image", param=where)
    try:
        raw = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as error:
        raise ApiError(400, f"{where}: the base64 payload is malformed ({error}).", code="invalid_base64", param=where) from None
    try:
        return load_image(raw, max_pixels=max_pixels or DEFAULT_MAX_PIXELS)
    except ImageLoadError as error:
        reason = refusal_reason(error)
        raise ApiError(400, f"{where}: the payload is not a usable image: {reason}", code="invalid_image", param=where) from None


def _content(message: dict, k: int, role: str, images: list[Any], limits: ApiLimits) -> tuple[str, int]:
    """The message's text (placeholders removed) and how many images it carried (decoded into ``images``)."""
    content = message.get("content")
    where = f"messages[{k}].content"
    if content is None:
        return "", 0
    if isinstance(content, str):
        return content.replace(IMAGE_PLACEHOLDER, ""), 0
    if not isinstance(content, list):
        raise ApiError(400, f"{where} must be a string or a list of content parts.", code="invalid_value", param=where)
    texts: list[str] = []
    count = 0
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        if not isinstance(part, dict):
            raise ApiError(400, f"{at} must be an object with a 'type'.", code="invalid_value", param=at)
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise ApiError(400, f"{at}.text must be a string.", code="invalid_value", param=at)
            texts.append(text.replace(IMAGE_PLACEHOLDER, ""))
        elif kind == "image_url":
            if role != "user":
                raise ApiError(400, f"{at}: images are only accepted in user messages.", code="invalid_value", param=at)
            if len(images) >= limits.max_images:
                raise ApiError(400, f"{at}: at most {limits.max_images} images per request.", code="too_many_images", param=at)
            spec = part.get("image_url")
            url = spec.get("url") if isinstance(spec, dict) else spec
            images.append(decode_data_url(url, f"{at}.image_url"))
            count += 1
        else:
            raise ApiError(400, f"{at}: unsupported content part type {kind!r} (use 'text' or 'image_url').",
                           code="invalid_value", param=at)
    return "\n".join(t for t in texts if t.strip()), count


def parse_chat_request(body: Any, served_model: str, limits: ApiLimits) -> ChatRequest:
    """Validate a ``/v1/chat/completions`` body; images are decoded here so bad ones fail this request only."""
    from ..inference import user_message

    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object.", code="invalid_json")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, f"'model' is required; this server serves {served_model!r}.", code="missing_model", param="model")
    if model != served_model:
        raise ApiError(404, f"The model {model!r} does not exist; this server serves {served_model!r}.",
                       code="model_not_found", param="model")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise ApiError(400, "'messages' must be a non-empty list.", code="empty_messages", param="messages")
    n = body.get("n")
    if n not in (None, 1):
        raise ApiError(400, f"'n' must be 1 (got {n!r}): one answer per request.", code="invalid_value", param="n")
    stop = body.get("stop")
    if stop not in (None, [], ""):
        raise ApiError(400, "'stop' sequences are not supported by this server; answers end at the template's stop string.",
                       code="unsupported_parameter", param="stop")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise ApiError(400, f"'stream' must be true or false, got {stream!r}.", code="invalid_value", param="stream")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise ApiError(400, "'stream_options' must be an object.", code="invalid_value", param="stream_options")

    images: list[Any] = []
    messages: list[dict] = []
    count = 0
    for k, message in enumerate(raw_messages):
        if not isinstance(message, dict):
            raise ApiError(400, f"messages[{k}] must be an object with 'role' and 'content'.", code="invalid_value",
                           param=f"messages[{k}]")
        role = message.get("role")
        role = "system" if role == "developer" else role
        if role not in ("system", "user", "assistant"):
            raise ApiError(400, f"messages[{k}].role {role!r} is not supported (use system, user or assistant).",
                           code="invalid_value", param=f"messages[{k}].role")
        text, count = _content(message, k, role, images, limits)
        if role == "user":
            messages.append(user_message(text.strip(), count))
        else:
            messages.append({"role": role, "content": text.strip()})
    if messages[-1]["role"] != "user":
        raise ApiError(400, "the last message must be from the user (the one to answer).", code="invalid_value",
                       param=f"messages[{len(messages) - 1}].role")
    last_text = messages[-1]["content"].replace(IMAGE_PLACEHOLDER, "").strip()
    if not last_text and count == 0:
        raise ApiError(400, "the last user message is empty: send some text (and optionally an image).",
                       code="empty_message", param=f"messages[{len(messages) - 1}].content")
    return ChatRequest(
        model=model, messages=messages, images=images,
        max_tokens=_integer(body, ("max_completion_tokens", "max_tokens"), limits.default_max_tokens, limits.max_tokens_limit),
        temperature=_number(body, "temperature", limits.default_temperature, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0, low_open=True),
        stream=stream, include_usage=bool(stream_options.get("include_usage", False)),
    )


# -- responses -----------------------------------------------------------------------------------------------


def completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


def chat_completion(cid: str, model: str, answer: str, prompt_tokens: int, completion_tokens: int, finish: str) -> dict:
    return {
        "id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "logprobs": None,
                     "finish_reason": finish}],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def chat_chunk(cid: str, model: str, created: int, delta: dict | None, finish: str | None = None,
               usage: dict | None = None, *, include_usage: bool = False) -> dict:
    """One ``chat.completion.chunk``; the usage-only chunk (``delta=None``) has no choices, as OpenAI sends it."""
    chunk: dict = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    if include_usage:
        chunk["usage"] = usage
    return chunk


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}
