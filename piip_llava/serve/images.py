"""Reading images that users send (files, uploads, request payloads), with refusals a person can act on.

:func:`~piip_llava.vision.image_processor.load_image` does the decoding; this adds the checks a server
needs before decoding (size) and words the reason for a refusal for the person who sent the file:
Pillow's own "cannot identify image file <_io.BytesIO object at 0x...>" says nothing useful to them.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import PiipLlavaError


class ImageRefused(PiipLlavaError, ValueError):
    """A user-supplied file or payload is not an acceptable image; the message says why."""


def refusal_reason(error: Exception) -> str:
    """Why ``load_image`` refused an input, without the input's repr (which the caller names better)."""
    from PIL import UnidentifiedImageError

    if isinstance(error.__cause__, UnidentifiedImageError):
        return "its contents are not in an image format that can be decoded (PNG, JPEG, WebP, GIF, BMP, TIFF...)."
    return str(error).split(": ", 1)[-1]


def open_image(source: Any, name: str, *, max_bytes: int | None = None):
    """Decode ``source`` (a path or bytes) as an RGB image, or raise :class:`ImageRefused` naming ``name``."""
    from ..vision.image_processor import ImageLoadError, load_image

    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise ImageRefused(f"{name}: no such file.")
        if os.path.isdir(path):
            raise ImageRefused(f"{name}: is a folder, not an image file.")
        size = os.path.getsize(path)
    else:
        size = len(source)
    if max_bytes is not None and size > max_bytes:
        raise ImageRefused(f"{name} is {size / 2**20:.2f} MB, over the {max_bytes / 2**20:.3g} MB limit; use a smaller image.")
    try:
        return load_image(source)
    except ImageLoadError as error:
        raise ImageRefused(f"{name} is not an image: {refusal_reason(error)}") from error
