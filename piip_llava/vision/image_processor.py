"""Image loading and the official PIIP-LLaVA preprocessing.

The official pipeline (LLaVA's ``process_images`` with ``image_aspect_ratio='pad'``):

1. ``expand2square``: paste onto a square canvas filled with (123, 116, 103), offset floored;
2. resize the shortest edge to S with **Pillow bicubic on uint8**, centre-crop S x S;
3. rescale by 1/255 (computed in float64, cast to float32);
4. normalise with **ImageNet** mean/std -- for every branch, CLIP branches included.

We call Pillow directly instead of ``CLIPImageProcessor`` because transformers 5's torchvision-based
processor differs from the one the released models were trained with by one grey level on a few
pixels; Pillow reproduces the official tensors bit for bit.

Only branch2's (highest) resolution is produced here: the tower derives every lower-resolution branch
input by bilinear downsampling of this *normalised* tensor, exactly as the official code does.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import PiipLlavaError
from ..constants import IMAGENET_MEAN, IMAGENET_STD, PAD_COLOR

ImageInput = Union[str, os.PathLike, bytes, np.ndarray, Image.Image, torch.Tensor]

MIN_IMAGE_SIDE = 2
"""Images thinner than this carry no usable content; they are refused rather than upscaled from a line."""

DEFAULT_MAX_PIXELS = 16384 * 16384
"""Guard against decompression bombs and accidental giant arrays (Pillow's own limit is ~179 MPixel)."""

ASPECT_MODES = ("pad", "square", "resize")
"""``pad``: expand2square then resize (finetune/eval). ``square``: shortest-edge resize + centre crop
(stage-1 pretraining, LLaVA's default when no aspect mode is set). ``resize``: plain S x S resize."""


class ImageLoadError(PiipLlavaError, ValueError):
    """An input could not be turned into an RGB image; the message says which input and why."""


def _to_rgb(image: Image.Image, what: str) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB, refusing what cannot be converted faithfully."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Composite on white, as a viewer would show it; dropping alpha would turn transparent
        # areas into whatever colour happened to be stored there (often black).
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit / 32-bit greyscale: rescale the full dynamic range to 8 bits instead of clipping.
        array = np.asarray(image, dtype=np.float64)
        return Image.fromarray(_float_to_uint8(array, what)).convert("RGB")
    try:
        return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV
    except (ValueError, OSError) as error:
        raise ImageLoadError(f"{what}: cannot convert Pillow mode {image.mode!r} to RGB ({error}).") from error


def _float_to_uint8(array: np.ndarray, what: str) -> np.ndarray:
    if not np.isfinite(array).all():
        raise ImageLoadError(f"{what}: the image contains NaN or infinite values.")
    low, high = float(array.min()), float(array.max())
    if array.dtype.kind == "f" and low >= 0.0 and high <= 1.0:
        return np.round(array * 255.0).astype(np.uint8)
    if array.dtype == np.uint16 or high > 255.0:
        scale = 65535.0 if high <= 65535.0 and low >= 0 else max(high - low, 1e-12)
        offset = 0.0 if scale == 65535.0 else low
        return np.round((array - offset) / scale * 255.0).clip(0, 255).astype(np.uint8)
    return np.round(array).clip(0, 255).astype(np.uint8)


def _array_to_image(array: np.ndarray, what: str) -> Image.Image:
    """Accept HW, HWC (C in 1/3/4) and CHW arrays of uint8, uint16 or float."""
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ImageLoadError(
            f"{what}: expected an array shaped (H, W), (H, W, 3|4) or (3|4, H, W), got {tuple(array.shape)}."
        )
    if array.dtype != np.uint8:
        array = _float_to_uint8(array.astype(np.float64) if array.dtype != np.uint16 else array, what)
    return Image.fromarray(array)


def load_image(source: ImageInput, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Return ``source`` as an RGB Pillow image, or raise :class:`ImageLoadError` saying why.

    Accepts a file path, raw encoded bytes, a Pillow image, a numpy array or an (H, W, C)/(C, H, W)
    uint8 tensor. Greyscale, palette, CMYK, alpha and 16-bit images are converted; EXIF rotation is
    applied so photos from phones come out upright.
    """
    what = f"image {source!r}" if isinstance(source, (str, os.PathLike)) else f"image of type {type(source).__name__}"
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise ImageLoadError(f"{what}: file not found. Check the path (and --image-folder, if one is used).")
        if os.path.isdir(path):
            raise ImageLoadError(f"{what}: is a directory, expected an image file.")
        try:
            with open(path, "rb") as handle:
                source = handle.read()
        except OSError as error:
            raise ImageLoadError(f"{what}: cannot be read ({error.strerror}).") from error
    if isinstance(source, torch.Tensor):
        source = source.detach().cpu().numpy()
    if isinstance(source, np.ndarray):
        image = _array_to_image(source, what)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageLoadError(f"{what}: the file is empty (0 bytes).")
        try:
            image = Image.open(io.BytesIO(bytes(source)))
            image.load()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            raise ImageLoadError(
                f"{what}: not a decodable image ({error}). Re-download or re-encode the file (PNG/JPEG/WebP...)."
            ) from error
        except Image.DecompressionBombError as error:
            raise ImageLoadError(f"{what}: {error}") from error
    elif isinstance(source, Image.Image):
        image = source
    else:
        raise ImageLoadError(f"{what}: unsupported input type; pass a path, bytes, PIL image or array.")

    image = ImageOps.exif_transpose(image) or image
    width, height = image.size
    if min(width, height) < MIN_IMAGE_SIDE:
        raise ImageLoadError(f"{what}: {width}x{height} pixels is too small to be an image (min side {MIN_IMAGE_SIDE}).")
    if width * height > max_pixels:
        raise ImageLoadError(
            f"{what}: {width}x{height} pixels exceeds the limit of {max_pixels} pixels; downscale it first."
        )
    return _to_rgb(image, what)


def expand2square(image: Image.Image, background: tuple[int, int, int] = PAD_COLOR) -> Image.Image:
    """Pad to a square canvas, centring the image (odd extra row/column goes bottom/right)."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new(image.mode, (side, side), background)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


def resize_shortest_edge_and_crop(image: Image.Image, size: int) -> Image.Image:
    """CLIP-style resize (shortest edge -> size, bicubic) then centre crop size x size."""
    width, height = image.size
    if width <= height:
        new_w, new_h = size, int(size * height / width)
    else:
        new_w, new_h = int(size * width / height), size
    if (new_w, new_h) != (width, height):
        image = image.resize((new_w, new_h), Image.BICUBIC)
    left = (new_w - size) // 2  # floor, as transformers' center_crop
    top = (new_h - size) // 2
    return image.crop((left, top, left + size, top + size))


@dataclass(frozen=True)
class PiipImageProcessor:
    """Turns images into the (B, 3, S, S) tensor the tower takes; S is the highest branch resolution."""

    image_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    pad_color: tuple[int, int, int] = PAD_COLOR
    max_pixels: int = DEFAULT_MAX_PIXELS

    def resize(self, image: Image.Image, aspect_mode: str = "pad") -> Image.Image:
        if aspect_mode not in ASPECT_MODES:
            raise ValueError(f"unknown aspect_mode {aspect_mode!r}; choose one of {ASPECT_MODES}.")
        if aspect_mode == "pad":
            image = expand2square(image, self.pad_color)
        if aspect_mode == "resize":
            return image.resize((self.image_size, self.image_size), Image.BICUBIC)
        return resize_shortest_edge_and_crop(image, self.image_size)

    def to_tensor(self, image: Image.Image) -> torch.Tensor:
        array = np.asarray(image, dtype=np.uint8).astype(np.float64) * (1.0 / 255.0)
        array = array.astype(np.float32)
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        array = (array - mean) / std
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))

    def __call__(self, images: ImageInput | Sequence[ImageInput], aspect_mode: str = "pad") -> torch.Tensor:
        if not isinstance(images, (list, tuple)):
            images = [images]
        if len(images) == 0:
            raise ValueError("no images given to the image processor.")
        tensors = [self.to_tensor(self.resize(load_image(im, max_pixels=self.max_pixels), aspect_mode)) for im in images]
        return torch.stack(tensors)

    def denormalize(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Inverse of the normalisation, for visualisation."""
        mean = torch.tensor(self.mean, dtype=pixel_values.dtype, device=pixel_values.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=pixel_values.dtype, device=pixel_values.device).view(-1, 1, 1)
        return pixel_values * std + mean
