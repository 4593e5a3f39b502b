"""Web demo (Gradio): upload an image and chat with the model, answers streamed token by token.

Binds 127.0.0.1 (this machine only) unless --host says otherwise; --share asks Gradio for a public link.
"""

from __future__ import annotations

import argparse

from ..serve.model_loading import add_model_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only; 0.0.0.0 = all)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="create a public Gradio share link (needs internet)")
    parser.add_argument("--max-upload-mb", type=float, default=10.0, help="largest image upload accepted")
    parser.add_argument("--concurrency", type=int, default=1, help="answers generated at once; others wait in the queue")
    parser.add_argument("--max-queue", type=int, default=64, help="waiting requests beyond this are turned away")
    parser.add_argument("--examples-dir", default=None, help="where to write the example photos (default: a temp folder)")


def run(args: argparse.Namespace) -> int:
    import os

    from ..errors import ConfigError
    from ..serve.model_loading import (
        ModelOptions,
        check_model_path,
        load_generator,
        prefer_passive_openmp,
    )

    if args.max_upload_mb <= 0:
        raise ConfigError("--max-upload-mb must be positive.")
    if args.concurrency < 1 or args.max_queue < 1:
        raise ConfigError("--concurrency and --max-queue must be at least 1.")
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port {args.port}: must be between 1 and 65535.")
    check_model_path(args.model)
    prefer_passive_openmp()  # before torch is imported
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home from a local demo

    from ..serve.gradio_app import DemoConfig, build_app, example_images

    generator = load_generator(ModelOptions.from_args(args))
    config = DemoConfig(max_upload_mb=args.max_upload_mb, concurrency=args.concurrency, max_queue=args.max_queue,
                        examples=example_images(args.examples_dir))
    app = build_app(generator, config)
    try:
        app.launch(server_name=args.host, server_port=args.port, share=args.share, **config.launch_kwargs())
    except OSError as error:  # Gradio raises OSError when the port is taken
        raise ConfigError(f"cannot start the demo on {args.host}:{args.port}: {error}") from error
    return 0
