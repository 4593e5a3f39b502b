"""Official preprocessing, bit for bit, and clear refusals for inputs that are not images."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TOWER_CASES, VISION_FIXTURES
from piip_llava.vision.image_processor import ImageLoadError, PiipImageProcessor, load_image


@pytest.mark.parametrize("case", TOWER_CASES)
def test_pad_mode_matches_official_on_a_real_photo(case):
    from safetensors.torch import load_file

    io_tensors = load_file(VISION_FIXTURES / case / "io.safetensors")
    size = io_tensors["processed_0"].shape[-1]
    processor = PiipImageProcessor(size)
    raw = io_tensors["raw_image_0"].numpy()
    resized = processor.resize(load_image(raw), "pad")
    np.testing.assert_array_equal(np.asarray(resized), io_tensors["resized_0_uint8"].numpy())
    torch.testing.assert_close(processor(raw), io_tensors["processed_0"], atol=1e-6, rtol=0)
    # From the lossless PNG on disk as well.
    torch.testing.assert_close(processor(VISION_FIXTURES / case / "raw_image_0.png"), io_tensors["processed_0"], atol=1e-6, rtol=0)


@pytest.mark.parametrize("case", TOWER_CASES)
def test_square_mode_matches_official_pretraining_preprocessing(case):
    from safetensors.torch import load_file

    io_tensors = load_file(VISION_FIXTURES / case / "io.safetensors")
    processor = PiipImageProcessor(io_tensors["processed_0"].shape[-1])
    torch.testing.assert_close(processor(io_tensors["raw_image_0"].numpy(), "square"), io_tensors["processed_0_square_mode"], atol=1e-6, rtol=0)


def _png(mode, size=(40, 30), value=None):
    image = Image.new(mode, size, value if value is not None else 0)
    buffer = io.BytesIO()
    image.save(buffer, format="TIFF" if mode in ("CMYK", "I;16") else "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("mode,value", [("L", 128), ("RGBA", (10, 20, 30, 0)), ("P", 3), ("CMYK", (0, 255, 0, 0)), ("I;16", 40000), ("1", 1)])
def test_any_pillow_mode_becomes_rgb(mode, value):
    image = load_image(_png(mode, value=value))
    assert image.mode == "RGB" and image.size == (40, 30)


def test_transparent_pixels_become_white_not_black():
    assert load_image(_png("RGBA", value=(0, 0, 0, 0))).getpixel((0, 0)) == (255, 255, 255)


def test_sixteen_bit_uses_the_full_range():
    array = np.full((8, 8), 65535, dtype=np.uint16)
    assert load_image(array).getpixel((0, 0)) == (255, 255, 255)


def test_arrays_and_tensors_in_any_layout():
    hwc = np.random.randint(0, 255, (20, 30, 3), dtype=np.uint8)
    assert load_image(hwc).size == (30, 20)
    assert load_image(torch.from_numpy(hwc).permute(2, 0, 1).contiguous()).size == (30, 20)
    assert load_image(np.random.rand(20, 30, 3)).size == (30, 20)


@pytest.mark.parametrize(
    "source,match",
    [
        (b"", "empty"),
        (b"not an image at all", "not a decodable image"),
        (np.zeros((1, 50, 3), dtype=np.uint8), "too small"),
        (np.zeros((5, 5, 7), dtype=np.uint8), "expected an array"),
        (np.full((4, 4), np.nan), "NaN"),
        (12345, "unsupported input type"),
    ],
)
def test_bad_inputs_are_refused_with_a_reason(source, match):
    with pytest.raises(ImageLoadError, match=match):
        load_image(source)


def test_missing_and_directory_paths(tmp_path):
    with pytest.raises(ImageLoadError, match="file not found"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageLoadError, match="is a directory"):
        load_image(tmp_path)


def test_truncated_jpeg_is_refused(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(buffer, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[:100])
    with pytest.raises(ImageLoadError, match="cut.jpg"):
        load_image(tmp_path / "cut.jpg")


def test_oversize_images_are_refused():
    with pytest.raises(ImageLoadError, match="exceeds the limit"):
        load_image(np.zeros((100, 100, 3), dtype=np.uint8), max_pixels=5000)


def test_tiny_and_huge_images_process_to_the_right_shape():
    processor = PiipImageProcessor(64)
    assert processor([np.zeros((3, 3, 3), np.uint8), np.zeros((2000, 3000, 3), np.uint8)]).shape == (2, 3, 64, 64)


def test_unknown_aspect_mode():
    with pytest.raises(ValueError, match="aspect_mode"):
        PiipImageProcessor(32)(np.zeros((8, 8, 3), np.uint8), "stretch")
