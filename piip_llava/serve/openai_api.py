"""An OpenAI-compatible HTTP API for one model: ``/v1/chat/completions``, ``/v1/models``, ``/health``.

Any OpenAI client (Python, JS, curl, LangChain...) can talk to a PIIP-LLaVA model by pointing its base
URL here. Images travel as base64 ``data:`` URLs in ``image_url`` content parts -- the server never
downloads anything. Requests are validated and their images decoded before they reach the model, so a
malformed one gets a 4xx with an explanation and cannot disturb the others; the model itself is driven
by one :class:`~piip_llava.serve.batching.BatchWorker` that batches concurrent non-streaming requests.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import PiipLlavaError
from .batching import BatchingConfig, BatchWorker, Job, QueueFullError
from .conversation import check_fits
from .openai_protocol import (
    ApiError,
    ApiLimits,
    chat_chunk,
    chat_completion,
    completion_id,
    parse_chat_request,
    usage,
)


@dataclass(frozen=True)
class ServeConfig:
    model_name: str | None = None
    """The id clients pass as ``model``; default: the checkpoint folder's name."""
    api_key: str | None = None
    """When set, ``/v1/*`` requires ``Authorization: Bearer <api_key>``; ``/health`` stays open for probes."""
    max_request_bytes: int = 20 * 2**20
    """Larger bodies are refused with 413 (base64 inflates an image by 4/3: 20 MiB carries a ~15 MB photo)."""
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    limits: ApiLimits = field(default_factory=ApiLimits)


def _error_response(status: int, message: str, type: str = "invalid_request_error", code: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type, "code": code, "param": None}}, status_code=status)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, or a 413 once it passes ``limit`` bytes.

    An oversize body is still read (and dropped) up to a few times the limit before answering, so the
    client gets the 413 instead of a connection reset in the middle of its upload.
    """
    declared = request.headers.get("content-length", "")
    too_big = declared.isdigit() and int(declared) > limit
    drain_limit = max(4 * limit, 64 * 2**20)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > drain_limit:
            break
        if size <= limit and not too_big:
            chunks.append(chunk)
    if too_big or size > limit:
        shown = int(declared) if declared.isdigit() else size
        raise ApiError(413, f"the request body is {shown / 2**20:.1f} MiB, over this server's limit of "
                            f"{limit / 2**20:.1f} MiB (--max-request-mb); send a smaller image.", code="request_too_large")
    return b"".join(chunks)


def create_app(generator, config: ServeConfig | None = None) -> FastAPI:
    """The FastAPI app serving ``generator``; its batching worker starts and stops with the app's lifespan."""
    config = config or ServeConfig()
    model_name = config.model_name or generator.loaded.name
    worker = BatchWorker(generator, config.batching)
    started = int(time.time())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        worker.start()
        try:
            yield
        finally:
            await run_in_threadpool(worker.stop)

    app = FastAPI(title="PIIP-LLaVA OpenAI-compatible API", lifespan=lifespan)
    app.state.worker = worker
    app.state.config = config
    app.state.model_name = model_name

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError):
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException):
        message = {404: f"no route {request.method} {request.url.path}; see /v1/chat/completions, /v1/models, /health",
                   405: f"method {request.method} is not allowed on {request.url.path}"}.get(error.status_code, str(error.detail))
        return _error_response(error.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, error: RequestValidationError):
        return _error_response(400, f"invalid request: {error.errors()}", code="invalid_value")

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, error: Exception):
        return _error_response(500, f"internal error: {type(error).__name__}: {error}", type="server_error")

    def authorize(request: Request) -> None:
        if config.api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise ApiError(401, "You didn't provide an API key: send 'Authorization: Bearer <key>'.", code="invalid_api_key")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), config.api_key.encode()):
            raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")

    def model_card() -> dict:
        return {"id": model_name, "object": "model", "created": started, "owned_by": "piip-llava"}

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": model_name, "waiting": worker.waiting}

    @app.get("/v1/models")
    async def list_models(request: Request):
        authorize(request)
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str, request: Request):
        authorize(request)
        if model_id != model_name:
            raise ApiError(404, f"The model {model_id!r} does not exist; this server serves {model_name!r}.",
                           code="model_not_found")
        return model_card()

    def count_tokens(text: str, limit: int) -> int:
        """Tokens in an answer, by re-tokenising its text (``Generator`` returns text, not ids).

        Re-tokenising can merge or split differently from how the tokens were generated, so the count
        is capped at ``max_tokens``, which generation never exceeds.
        """
        return min(limit, len(generator.tokenizer.tokenizer.encode(text, add_special_tokens=False))) if text else 0

    def prepare(body) -> tuple:
        """Parse + decode images + check the prompt fits (runs in a worker thread: it is CPU work)."""
        from ..inference import GenerationOptions

        chat = parse_chat_request(body, model_name, config.limits)
        try:
            prompt_tokens = check_fits(generator, chat.messages, chat.images, chat.max_tokens)
        except PiipLlavaError as error:
            raise ApiError(400, str(error), code="context_length_exceeded", param="messages") from None
        except ValueError as error:
            raise ApiError(400, f"the messages cannot be rendered as a prompt: {error}", code="invalid_value",
                           param="messages") from None
        options = GenerationOptions(max_new_tokens=chat.max_tokens, temperature=chat.temperature, top_p=chat.top_p)
        return chat, options, prompt_tokens

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        authorize(request)
        raw = await _read_body(request, config.max_request_bytes)
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ApiError(400, f"the request body is not valid JSON ({error}).", code="invalid_json") from None
        chat, options, prompt_tokens = await run_in_threadpool(prepare, body)
        cid = completion_id()
        if chat.stream:
            return _stream(chat, options, prompt_tokens, cid)
        job = Job(chat.messages, chat.images, options)
        _submit(job)
        try:
            answer = await asyncio.wrap_future(job.future)
        except Exception as error:  # noqa: BLE001 -- reported to the client as a 500 with the reason
            raise ApiError(500, f"generation failed: {type(error).__name__}: {error}", type="server_error") from None
        completion_tokens = count_tokens(answer, chat.max_tokens)
        finish = "length" if completion_tokens >= chat.max_tokens else "stop"
        return chat_completion(cid, model_name, answer, prompt_tokens, completion_tokens, finish)

    def _submit(job: Job) -> None:
        try:
            worker.submit(job)
        except QueueFullError as error:
            raise ApiError(503, f"the server is busy: {error}", type="server_error", code="queue_full") from None

    def _stream(chat, options, prompt_tokens: int, cid: str) -> StreamingResponse:
        loop = asyncio.get_running_loop()
        items: asyncio.Queue = asyncio.Queue()
        job = Job(chat.messages, chat.images, options, on_chunk=lambda item: loop.call_soon_threadsafe(items.put_nowait, item))
        _submit(job)
        created = int(time.time())

        def event(payload: dict) -> str:
            return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

        async def events():
            try:
                yield event(chat_chunk(cid, model_name, created, {"role": "assistant", "content": ""},
                                       include_usage=chat.include_usage))
                text = ""
                while True:
                    item = await items.get()
                    if item is None:
                        break
                    if isinstance(item, BaseException):
                        error = ApiError(500, f"generation failed: {type(item).__name__}: {item}", type="server_error")
                        yield event(error.body())
                        yield "data: [DONE]\n\n"
                        return
                    text += item
                    yield event(chat_chunk(cid, model_name, created, {"content": item}, include_usage=chat.include_usage))
                completion_tokens = count_tokens(text, chat.max_tokens)
                finish = "length" if completion_tokens >= chat.max_tokens else "stop"
                yield event(chat_chunk(cid, model_name, created, {}, finish, include_usage=chat.include_usage))
                if chat.include_usage:
                    yield event(chat_chunk(cid, model_name, created, None, usage=usage(prompt_tokens, completion_tokens),
                                           include_usage=True))
                yield "data: [DONE]\n\n"
            finally:
                job.cancelled.set()  # the client left (or we are done): stop generating for it

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return app
