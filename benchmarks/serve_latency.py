"""Latency of the OpenAI-compatible API: time to first token and tokens/s, alone and under 8 concurrent requests.

Starts ``piip-llava serve`` in a subprocess on a free localhost port (or uses ``--url``), sends a real
photo (scikit-image's cat) with a question, and prints what it measured:

* one streaming request at a time: time to first token (TTFT), decode tokens/s, total latency;
* 8 concurrent streaming requests: TTFT and latency per request (streams run one after another on the
  one model), and the aggregate tokens/s;
* 8 concurrent non-streaming requests: latency and aggregate tokens/s (these are batched into one
  ``generate`` call, up to ``--max-batch``).

    python benchmarks/serve_latency.py                         # outputs/quickstart if present, else a tiny random model
    python benchmarks/serve_latency.py --model PATH --device cuda --max-tokens 128
    python benchmarks/serve_latency.py --url http://127.0.0.1:8000 --api-key KEY

Token counts come from the server's ``usage`` (re-tokenised answers); a model that stops early (the
quickstart model answers in a word or two) gives few tokens, which the output shows.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOKENIZER = ROOT / "tests" / "fixtures" / "tokenization" / "tokenizer"
QUICKSTART = ROOT / "outputs" / "quickstart"


@dataclass
class Result:
    ttft_s: float | None
    total_s: float
    tokens: int

    @property
    def decode_tps(self) -> float | None:
        if self.ttft_s is None or self.tokens < 2 or self.total_s <= self.ttft_s:
            return None
        return (self.tokens - 1) / (self.total_s - self.ttft_s)


def photo_data_url() -> str:
    from PIL import Image
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.chelsea()).save(buffer, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model: str, device: str, max_batch: int) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    command = [sys.executable, "-m", "piip_llava.cli", "serve", "--model", model, "--device", device,
               "--port", str(port), "--max-batch", str(max_batch), "--log-level", "warning"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}:\n{process.stderr.read()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("the server did not become healthy within 10 minutes")


def request_body(model: str, image_url: str, max_tokens: int, stream: bool) -> dict:
    body = {
        "model": model, "max_tokens": max_tokens, "temperature": 0, "stream": stream,
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": image_url}},
            {"type": "text", "text": "Describe the image in detail."},
        ]}],
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def run_stream(client, url: str, body: dict) -> Result:
    start = time.perf_counter()
    first = None
    tokens = 0
    with client.stream("POST", url + "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if "error" in event:
                raise RuntimeError(event["error"]["message"])
            if event["choices"] and event["choices"][0]["delta"].get("content") and first is None:
                first = time.perf_counter() - start
            if event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
    return Result(first, time.perf_counter() - start, tokens)


def run_plain(client, url: str, body: dict) -> Result:
    start = time.perf_counter()
    response = client.post(url + "/v1/chat/completions", json=body)
    response.raise_for_status()
    return Result(None, time.perf_counter() - start, response.json()["usage"]["completion_tokens"])


def fmt(values: list[float], unit: str = "s") -> str:
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.3f} {unit}"
    return f"median {statistics.median(values):.3f} {unit} (min {min(values):.3f}, max {max(values):.3f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help=f"checkpoint (default: {QUICKSTART} if present, else a tiny random model)")
    parser.add_argument("--url", default=None, help="benchmark a server that is already running instead")
    parser.add_argument("--api-key", default=os.environ.get("PIIP_LLAVA_API_KEY"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="sequential single requests to time")
    args = parser.parse_args()

    import httpx

    process = None
    workdir = None
    if args.url:
        url, described = args.url.rstrip("/"), args.url
    else:
        model = args.model
        if model is None and (QUICKSTART / "config.json").is_file():
            model = str(QUICKSTART)
        if model is None:
            sys.path.insert(0, str(ROOT))
            from piip_llava.testing import make_tiny_checkpoint

            workdir = tempfile.TemporaryDirectory()
            model = str(make_tiny_checkpoint(Path(workdir.name) / "tiny-piip-llava", TOKENIZER))
            described = "tiny random checkpoint (piip_llava.testing.make_tiny_checkpoint: tiny-piip-vit + 2-layer LLaMA, hidden 64)"
        else:
            described = model
        process, url = start_server(model, args.device, max_batch=args.concurrency)
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    try:
        with httpx.Client(timeout=600, headers=headers, limits=httpx.Limits(max_connections=64)) as client:
            model_id = client.get(url + "/v1/models").json()["data"][0]["id"]
            image = photo_data_url()
            stream_body = request_body(model_id, image, args.max_tokens, stream=True)
            plain_body = request_body(model_id, image, args.max_tokens, stream=False)
            run_stream(client, url, stream_body)  # warm-up: first-call allocations, kernels
            run_plain(client, url, plain_body)

            print(f"model: {described}")
            print(f"server: {url}; prompt: chelsea photo (451x300 JPEG) + 'Describe the image in detail.'; "
                  f"max_tokens={args.max_tokens}, greedy")

            single = [run_stream(client, url, stream_body) for _ in range(args.repeats)]
            print(f"\n1 streaming request at a time ({args.repeats} runs):")
            print(f"  time to first token: {fmt([r.ttft_s for r in single if r.ttft_s is not None])}")
            print(f"  decode speed:        {fmt([r.decode_tps for r in single if r.decode_tps], 'tok/s')}")
            print(f"  total latency:       {fmt([r.total_s for r in single])}; completion tokens {[r.tokens for r in single]}")

            n = args.concurrency
            with ThreadPoolExecutor(n) as pool:
                start = time.perf_counter()
                streams = list(pool.map(lambda _: run_stream(client, url, stream_body), range(n)))
                wall = time.perf_counter() - start
            print(f"\n{n} concurrent streaming requests (queued; one stream generates at a time):")
            print(f"  time to first token: {fmt([r.ttft_s for r in streams if r.ttft_s is not None])}")
            print(f"  per-request decode:  {fmt([r.decode_tps for r in streams if r.decode_tps], 'tok/s')}")
            print(f"  latency:             {fmt([r.total_s for r in streams])}")
            print(f"  aggregate:           {sum(r.tokens for r in streams) / wall:.1f} tok/s over {wall:.2f} s")

            with ThreadPoolExecutor(n) as pool:
                start = time.perf_counter()
                plain = list(pool.map(lambda _: run_plain(client, url, plain_body), range(n)))
                wall = time.perf_counter() - start
            print(f"\n{n} concurrent non-streaming requests (batched, up to {n} per generate call):")
            print(f"  latency:             {fmt([r.total_s for r in plain])}")
            print(f"  aggregate:           {sum(r.tokens for r in plain) / wall:.1f} tok/s over {wall:.2f} s; "
                  f"completion tokens {[r.tokens for r in plain]}")
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
        if workdir is not None:
            workdir.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
