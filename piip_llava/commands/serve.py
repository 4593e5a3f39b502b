"""Serve a model over an OpenAI-compatible HTTP API (POST /v1/chat/completions, GET /v1/models, GET /health).

Point any OpenAI client at ``http://HOST:PORT/v1``; send images as base64 data URLs in ``image_url``
parts. Concurrent non-streaming requests are batched (up to --max-batch per forward).
"""

from __future__ import annotations

import argparse

from ..serve.model_loading import add_model_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key", default=None,
                        help="require 'Authorization: Bearer KEY' on /v1/* (default: the PIIP_LLAVA_API_KEY variable, else none)")
    parser.add_argument("--model-name", default=None, help="model id clients send (default: the checkpoint folder's name)")
    parser.add_argument("--max-request-mb", type=float, default=20.0, help="largest request body; bigger ones get 413")
    parser.add_argument("--max-batch", type=int, default=8, help="most requests answered by one batched generate call")
    parser.add_argument("--batch-wait-ms", type=float, default=10.0, help="how long to wait for a batch to fill")
    parser.add_argument("--max-queue", type=int, default=256, help="waiting requests beyond this get 503")
    parser.add_argument("--max-tokens-limit", type=int, default=2048, help="largest max_tokens a request may ask for")
    parser.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))


def run(args: argparse.Namespace) -> int:
    import os
    import sys

    from ..errors import ConfigError
    from ..serve.batching import BatchingConfig
    from ..serve.model_loading import (
        ModelOptions,
        check_model_path,
        load_generator,
        prefer_passive_openmp,
    )
    from ..serve.openai_api import ServeConfig, create_app
    from ..serve.openai_protocol import ApiLimits

    if args.max_batch < 1 or args.max_queue < 1 or args.max_tokens_limit < 1:
        raise ConfigError("--max-batch, --max-queue and --max-tokens-limit must be at least 1.")
    if args.max_request_mb <= 0:
        raise ConfigError("--max-request-mb must be positive.")
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port {args.port}: must be between 1 and 65535.")
    check_model_path(args.model)
    prefer_passive_openmp()  # before torch is imported
    api_key = args.api_key or os.environ.get("PIIP_LLAVA_API_KEY") or None
    import uvicorn

    generator = load_generator(ModelOptions.from_args(args))
    config = ServeConfig(
        model_name=args.model_name, api_key=api_key, max_request_bytes=int(args.max_request_mb * 2**20),
        batching=BatchingConfig(max_batch=args.max_batch, batch_wait_s=args.batch_wait_ms / 1000, max_queue=args.max_queue),
        limits=ApiLimits(max_tokens_limit=args.max_tokens_limit, default_max_tokens=min(256, args.max_tokens_limit)),
    )
    app = create_app(generator, config)
    if args.host not in ("127.0.0.1", "localhost", "::1") and api_key is None:
        print(f"warning: binding {args.host} without --api-key: anyone who can reach this port can use the model.",
              file=sys.stderr)
    print(f"serving {app.state.model_name!r} at http://{args.host}:{args.port}/v1 (OpenAI-compatible; "
          f"{'API key required' if api_key else 'no API key'})", flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    except OSError as error:  # e.g. the port is taken
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {error.strerror or error}") from error
    return 0
