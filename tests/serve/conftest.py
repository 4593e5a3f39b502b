"""Fixtures for the serving front ends: a tiny random checkpoint (built per module, in seconds) and photos."""

from __future__ import annotations

import base64
import io
import socket
from pathlib import Path

import pytest

TOKENIZER = Path(__file__).parents[1] / "fixtures" / "tokenization" / "tokenizer"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def png_bytes(array) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(raw: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64," + base64.b64encode(raw).decode()


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from piip_llava.testing import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("serve") / "tiny-piip-llava", TOKENIZER)


@pytest.fixture(scope="module")
def generator(tiny_checkpoint):
    from piip_llava.serve.model_loading import ModelOptions, load_generator

    return load_generator(ModelOptions(path=str(tiny_checkpoint), device="cpu"))


@pytest.fixture(scope="module")
def chelsea_png(tmp_path_factory) -> Path:
    """A real photo (scikit-image's cat), as a PNG file."""
    from skimage import data

    path = tmp_path_factory.mktemp("photos") / "chelsea.png"
    path.write_bytes(png_bytes(data.chelsea()))
    return path
