"""The OpenAI-compatible API, driven by the official ``openai`` client against a real uvicorn server."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from .conftest import data_url, free_port, png_bytes

API_KEY = "test-key"
MAX_REQUEST_BYTES = 2**20


@pytest.fixture(scope="module")
def server(generator):
    """A uvicorn server on a free localhost port, in a thread; yields its base URL."""
    import uvicorn

    from piip_llava.serve.batching import BatchingConfig
    from piip_llava.serve.openai_api import ServeConfig, create_app

    config = ServeConfig(api_key=API_KEY, max_request_bytes=MAX_REQUEST_BYTES,
                         batching=BatchingConfig(max_batch=8, batch_wait_s=0.05))
    app = create_app(generator, config)
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield {"url": f"http://127.0.0.1:{port}", "app": app}
    uv.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server["url"] + "/v1", api_key=API_KEY, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def photo_url(chelsea_png) -> str:
    return data_url(chelsea_png.read_bytes())


@pytest.fixture(scope="module")
def model_id(client) -> str:
    return client.models.list().data[0].id


def ask(question: str, url: str | None) -> list[dict]:
    content: list[dict] = [{"type": "text", "text": question}]
    if url is not None:
        content.append({"type": "image_url", "image_url": {"url": url}})
    return [{"role": "user", "content": content}]


def assert_healthy(server) -> None:
    response = httpx.get(server["url"] + "/health", timeout=10)
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_models_and_health(server, client, tiny_checkpoint):
    models = client.models.list().data
    assert [m.id for m in models] == [tiny_checkpoint.name]
    assert client.models.retrieve(tiny_checkpoint.name).id == tiny_checkpoint.name
    assert_healthy(server)


def test_non_streaming_answer_with_image(client, model_id, photo_url):
    response = client.chat.completions.create(model=model_id, messages=ask("What is in the picture?", photo_url),
                                              max_tokens=12)
    choice = response.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str) and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert response.object == "chat.completion" and response.model == model_id
    # 64 visual tokens replace the one <image> placeholder in the prompt.
    assert response.usage.prompt_tokens > 64 and 0 < response.usage.completion_tokens <= 12
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens


def test_streaming_answer_matches_non_streaming(client, model_id, photo_url):
    messages = ask("Describe the image.", photo_url)
    whole = client.chat.completions.create(model=model_id, messages=messages, max_tokens=12).choices[0].message.content
    chunks = list(client.chat.completions.create(model=model_id, messages=messages, max_tokens=12, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 1, "the answer should arrive in several chunks"
    assert "".join(pieces).strip() == whole  # greedy: streaming and batched generation agree
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals in (["stop"], ["length"])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_sse_wire_format_ends_with_done(server, model_id, photo_url):
    body = {"model": model_id, "messages": ask("Hi?", photo_url), "max_tokens": 4, "stream": True}
    with httpx.stream("POST", server["url"] + "/v1/chat/completions", json=body, timeout=60,
                      headers={"Authorization": f"Bearer {API_KEY}"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in events)
    assert events[-1] == "data: [DONE]"
    first = json.loads(events[0][6:])
    assert first["object"] == "chat.completion.chunk" and first["choices"][0]["delta"]["role"] == "assistant"


def test_twenty_concurrent_requests_are_all_answered_in_batches(server, client, model_id, photo_url):
    worker = server["app"].state.worker
    batches_before = worker.batches_run

    def one(k: int) -> str:
        response = client.chat.completions.create(model=model_id, messages=ask(f"Question number {k}?", photo_url),
                                                  max_tokens=6)
        return response.choices[0].message.content

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(one, range(20)))
    assert len(answers) == 20 and all(isinstance(a, str) for a in answers)
    assert worker.largest_batch > 1, "concurrent requests should have been batched"
    assert worker.batches_run - batches_before < 20
    assert_healthy(server)


def test_identical_requests_get_identical_answers_in_a_batch(client, model_id, photo_url):
    def one(_):
        return client.chat.completions.create(model=model_id, messages=ask("Same?", photo_url), max_tokens=6) \
            .choices[0].message.content

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(one, range(4)))
    assert len(set(answers)) == 1


TINY_TEXT = b"this is a text file, not an image\n"


@pytest.mark.parametrize(
    ("case", "status", "phrase"),
    [
        ("malformed base64", 400, "base64 payload is malformed"),
        ("not an image", 400, "not a usable image"),
        ("text media type", 400, "not an image"),
        ("remote url", 400, "only base64 data URLs"),
        ("oversize", 413, "over this server's limit"),
        ("no messages", 400, "'messages' must be a non-empty list"),
        ("empty message", 400, "the last user message is empty"),
        ("unknown model", 404, "does not exist"),
        ("bad temperature", 400, "'temperature' must be in"),
        ("bad max_tokens", 400, "'max_tokens' must be between"),
        ("assistant last", 400, "the last message must be from the user"),
        ("bad part type", 400, "unsupported content part type"),
    ],
)
def test_bad_requests_get_4xx_with_a_message_and_the_server_stays_up(server, client, model_id, case, status, phrase):
    kwargs = {"model": model_id, "messages": ask("What is this?", None), "max_tokens": 4}
    part = lambda url: ask("What is this?", url)
    if case == "malformed base64":
        kwargs["messages"] = part("data:image/png;base64,iVBORw0KGgo***not-base64***")
    elif case == "not an image":
        kwargs["messages"] = part(data_url(TINY_TEXT))
    elif case == "text media type":
        kwargs["messages"] = part(data_url(TINY_TEXT, "text/plain"))
    elif case == "remote url":
        kwargs["messages"] = part("https://example.com/cat.png")
    elif case == "oversize":
        kwargs["messages"] = part(data_url(b"\0" * (MAX_REQUEST_BYTES + 1)))
    elif case == "no messages":
        kwargs["messages"] = []
    elif case == "empty message":
        kwargs["messages"] = [{"role": "user", "content": "   "}]
    elif case == "unknown model":
        kwargs["model"] = "gpt-4o"
    elif case == "bad temperature":
        kwargs["temperature"] = 3.5
    elif case == "bad max_tokens":
        kwargs["max_tokens"] = 0
    elif case == "assistant last":
        kwargs["messages"] = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    elif case == "bad part type":
        kwargs["messages"] = [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(**kwargs)
    error = caught.value
    assert error.status_code == status
    assert phrase in error.body["message"], error.body
    assert set(error.body) >= {"message", "type", "code"}
    assert_healthy(server)


def test_invalid_json_and_unknown_route(server):
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    response = httpx.post(server["url"] + "/v1/chat/completions", content=b"{not json", headers=headers, timeout=10)
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]
    response = httpx.get(server["url"] + "/v1/nothing", headers=headers, timeout=10)
    assert response.status_code == 404 and "no route" in response.json()["error"]["message"]


def test_api_key_is_enforced(server, model_id):
    for key in ("wrong-key", None):
        headers = {} if key is None else {"Authorization": f"Bearer {key}"}
        response = httpx.get(server["url"] + "/v1/models", headers=headers, timeout=10)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server["url"] + "/v1", api_key="wrong-key", max_retries=0).chat.completions.create(
            model=model_id, messages=ask("Hi", None))
    assert_healthy(server)  # /health stays open for probes


def test_client_leaving_mid_stream_frees_the_model(server, client, model_id, photo_url):
    # 1900 tokens take the tiny model several seconds; a cancelled stream stops within a token or two.
    body = {"model": model_id, "messages": ask("Tell me everything.", photo_url), "max_tokens": 1900, "stream": True}
    with httpx.stream("POST", server["url"] + "/v1/chat/completions", json=body, timeout=60,
                      headers={"Authorization": f"Bearer {API_KEY}"}) as response:
        lines = response.iter_lines()
        next(lines)  # the first event, then hang up
    started = time.monotonic()
    answer = client.chat.completions.create(model=model_id, messages=ask("Still there?", photo_url), max_tokens=4)
    assert answer.choices[0].message.content is not None
    assert time.monotonic() - started < 3, "the abandoned stream kept the model busy"


# -- request parsing, without a server ---------------------------------------------------------------------


def test_parse_puts_one_placeholder_per_image_and_strips_typed_ones():
    from skimage import data

    from piip_llava.serve.openai_protocol import ApiLimits, parse_chat_request

    url = data_url(png_bytes(data.coffee()))
    body = {"model": "m", "messages": [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "<image> What is it?"}, {"type": "image_url", "image_url": {"url": url}}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A cup."}]},
        {"role": "user", "content": "What colour?"},
    ]}
    request = parse_chat_request(body, "m", ApiLimits())
    assert [m["role"] for m in request.messages] == ["system", "user", "assistant", "user"]
    assert request.messages[1]["content"] == "<image>\nWhat is it?"
    assert len(request.images) == 1 and request.images[0].size == (600, 400)
    assert request.max_tokens == ApiLimits().default_max_tokens and request.temperature == 0.0 and not request.stream


def test_parse_limits_images_per_request():
    from skimage import data

    from piip_llava.serve.openai_protocol import ApiError, ApiLimits, parse_chat_request

    url = data_url(png_bytes(data.coffee()[:64, :64]))
    parts = [{"type": "image_url", "image_url": {"url": url}}] * 3 + [{"type": "text", "text": "Compare."}]
    with pytest.raises(ApiError, match="at most 2 images"):
        parse_chat_request({"model": "m", "messages": [{"role": "user", "content": parts}]}, "m", ApiLimits(max_images=2))
