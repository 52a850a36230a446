"""open_rgb / to_rgb: every PIL mode becomes the right 8-bit RGB pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tladvisor.data.images import looks_like_image, open_rgb, oriented_size, to_rgb


def pixels(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image).astype(int)


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257 * 100, 65535, 1000]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == "I;16"
    rgb = pixels(open_rgb(path))
    # PIL's own convert("RGB") would give 255 for every non-zero value here
    assert rgb[0, :, 0].tolist() == [0, 100, 255, 4]
    assert (rgb[..., 0] == rgb[..., 2]).all()


def test_palette_transparency_is_composited_on_white(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.putpixel((0, 0), 0)  # red, but transparent
    image.putpixel((1, 0), 1)  # opaque blue
    path = tmp_path / "palette.png"
    image.save(path, transparency=0)
    assert Image.open(path).mode == "P"
    assert pixels(open_rgb(path)).tolist() == [[[255, 255, 255], [0, 0, 255]]]


@pytest.mark.parametrize("mode, value, expected", [
    ("LA", (0, 128), [127, 127, 127]),  # black at half alpha over white
    ("RGBA", (255, 0, 0, 0), [255, 255, 255]),  # fully transparent red
    ("RGBA", (0, 0, 255, 255), [0, 0, 255]),
    ("L", 77, [77, 77, 77]),
])
def test_alpha_and_grey_modes(tmp_path, mode, value, expected):
    path = tmp_path / f"{mode}.png"
    Image.new(mode, (3, 2), value).save(path)
    assert pixels(open_rgb(path))[1, 2].tolist() == expected


def test_modes_that_only_exist_in_memory():
    premultiplied = Image.new("La", (1, 1), (200, 255))
    assert pixels(to_rgb(premultiplied)).tolist() == [[[200, 200, 200]]]
    palette_alpha = Image.new("PA", (1, 1), (0, 0))
    assert pixels(to_rgb(palette_alpha)).tolist() == [[[255, 255, 255]]]


def test_bilevel_image(tmp_path):
    image = Image.new("1", (2, 1), 0)
    image.putpixel((1, 0), 1)
    path = tmp_path / "bits.png"
    image.save(path)
    assert pixels(open_rgb(path)).tolist() == [[[0, 0, 0], [255, 255, 255]]]


def test_cmyk_jpeg_comes_back_as_its_rgb_colours(tmp_path):
    original = Image.new("RGB", (32, 16), (200, 40, 60))
    original.paste((30, 160, 90), (16, 0, 32, 16))
    path = tmp_path / "print.jpg"
    original.convert("CMYK").save(path, quality=95)
    assert Image.open(path).mode == "CMYK"
    rgb = pixels(open_rgb(path))
    assert np.abs(rgb[8, 4] - [200, 40, 60]).max() <= 6
    assert np.abs(rgb[8, 28] - [30, 160, 90]).max() <= 6


def test_int32_and_float_modes_are_scaled_by_their_range():
    sixteen_in_i = Image.fromarray(np.array([[0, 65535]], dtype=np.int32))
    assert sixteen_in_i.mode == "I"
    assert pixels(to_rgb(sixteen_in_i))[0, :, 1].tolist() == [0, 255]
    unit_float = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert unit_float.mode == "F"
    assert pixels(to_rgb(unit_float))[0, :, 0].tolist() == [0, 128, 255]
    odd_float = Image.fromarray(np.array([[-2.0, 0.0, 2.0]], dtype=np.float32))
    assert pixels(to_rgb(odd_float))[0, :, 0].tolist() == [0, 128, 255]


def test_float_tiff_file(tmp_path):
    path = tmp_path / "depth.tif"
    Image.fromarray(np.array([[0.0, 0.25]], dtype=np.float32)).save(path)
    assert pixels(open_rgb(path))[0, :, 0].tolist() == [0, 64]


def test_exif_orientation_is_applied(tmp_path):
    stored = Image.new("RGB", (4, 2), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 1, 2))  # left column red
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    path = tmp_path / "phone.png"
    stored.save(path, exif=exif)
    shown = open_rgb(path)
    assert shown.size == (2, 4)
    assert oriented_size(Image.open(path)) == (2, 4)
    rgb = pixels(shown)
    assert rgb[0].tolist() == [[255, 0, 0], [255, 0, 0]]  # the stored left column is now the top row
    assert rgb[3].tolist() == [[0, 0, 255], [0, 0, 255]]


def test_truncated_jpeg_raises_instead_of_returning_grey(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(OSError):
        open_rgb(path)


def test_looks_like_image(tmp_path):
    assert looks_like_image(tmp_path / "a.JPG")
    assert not looks_like_image(tmp_path / ".hidden.png")
    assert not looks_like_image(tmp_path / "notes.txt")
