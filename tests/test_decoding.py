"""Decoding image files as they come: orientation, modes, frames, formats, damaged files,
decompression bombs, the check before any model runs, and folders that change mid-run."""

from __future__ import annotations

import textwrap

import h5py
import numpy as np
import pytest
from PIL import Image

from actpipe.extraction import ExtractionOptions, extract_activations
from actpipe.models import ModelSpec
from actpipe.stimuli import (
    FolderChangedError,
    StimulusError,
    check_image,
    decode_image,
    load_rgb,
    load_stimulus_folder,
)
from tests.helpers.images import (
    block_image,
    cmyk_jpeg,
    frames,
    palette_with_transparency,
    photo,
    png_bomb,
    text_named_png,
    truncated_jpeg,
    with_orientation,
)

GREY = (0.5, 0.5, 0.5)


def pixels(decoded) -> np.ndarray:
    assert isinstance(decoded, Image.Image) and decoded.mode == "RGB"
    return np.asarray(decoded)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_exactly(tmp_path, orientation):
    upright = photo(30, 44, seed=orientation)  # not square: a rotation changes the shape
    path = with_orientation(tmp_path / "p.png", upright, orientation)
    with Image.open(path) as raw:
        assert raw.getexif()[0x0112] == orientation
    np.testing.assert_array_equal(pixels(decode_image(path)), upright)


def test_exif_rotated_jpeg_equals_the_upright_jpeg(tmp_path):
    upright = block_image(48, 64)
    options = {"quality": 100, "subsampling": 0}
    rotated = with_orientation(tmp_path / "camera.jpg", upright, 6, **options)
    Image.fromarray(upright).save(tmp_path / "upright.jpg", **options)
    with Image.open(rotated) as raw:
        assert raw.size == (48, 64)  # stored sideways
    got = pixels(decode_image(rotated))
    assert got.shape == (48, 64, 3)
    np.testing.assert_array_equal(got, pixels(decode_image(tmp_path / "upright.jpg")))
    assert np.abs(got.astype(int) - upright).max() <= 2  # and it is the picture


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    rgb = photo(40, 56)
    path = cmyk_jpeg(tmp_path / "print.jpg", rgb)
    with Image.open(path) as raw:
        assert raw.mode == "CMYK"
    got = pixels(decode_image(path)).astype(float)
    assert got.shape == rgb.shape
    assert np.abs(got - rgb).mean() < 4  # JPEG loss only: C = 255 - R, M = 255 - G, ...


@pytest.mark.parametrize(
    "name,save",
    [
        ("anim.gif", {}),
        ("anim.webp", {"lossless": True}),
        ("anim.png", {}),  # APNG
        ("pages.tif", {}),  # multi-page TIFF
    ],
)
def test_first_frame_of_animations_and_multi_page_files(tmp_path, name, save):
    colours = [(250, 10, 10), (10, 250, 10), (10, 10, 250)]
    path = frames(tmp_path / name, colours, **save)
    with Image.open(path) as raw:
        assert getattr(raw, "n_frames", 1) == 3
    got = pixels(decode_image(path))
    assert got.shape == (10, 12, 3)
    np.testing.assert_array_equal(got, np.broadcast_to(np.array(colours[0], np.uint8), got.shape))
    assert check_image(path) is None


@pytest.mark.parametrize("suffix,save", [(".webp", {"lossless": True}), (".bmp", {})])
def test_webp_and_bmp_decode_exactly(tmp_path, suffix, save):
    rgb = photo(21, 33)
    Image.fromarray(rgb).save(tmp_path / f"x{suffix}", **save)
    np.testing.assert_array_equal(pixels(decode_image(tmp_path / f"x{suffix}")), rgb)


def test_16_bit_and_float_images_stay_float(tmp_path):
    deep = np.array([[0, 65535, 32768], [1, 257, 40000]], np.uint16)
    Image.fromarray(deep).save(tmp_path / "d.png")
    Image.fromarray(deep).save(tmp_path / "d.tif")
    for name in ("d.png", "d.tif"):
        got = decode_image(tmp_path / name)
        assert isinstance(got, np.ndarray) and got.dtype == np.float32 and got.shape == (2, 3, 3)
        np.testing.assert_allclose(got[:, :, 1], deep / 65535.0, rtol=0, atol=1e-7)
    values = np.array([[-0.5, 0.25], [0.75, 2.0]], np.float32)
    Image.fromarray(values, "F").save(tmp_path / "f.tif")
    got = decode_image(tmp_path / "f.tif")
    np.testing.assert_array_equal(got[:, :, 0], np.clip(values, 0, 1))


def test_palette_with_transparency_and_premultiplied_modes_are_composited(tmp_path):
    path, rgba = palette_with_transparency(tmp_path / "p.png")
    background = (1.0, 0.0, 1.0)
    got = pixels(decode_image(path, background)).astype(int)
    a = rgba[:, :, 3:4].astype(int)
    bg = np.array([255, 0, 255])
    expected = (rgba[:, :, :3] * a + bg * (255 - a) + 127) // 255
    np.testing.assert_array_equal(got, expected)
    # Partial alpha in LA and a 1-bit image.
    la = np.stack([np.full((2, 2), 200, np.uint8), np.array([[0, 64], [128, 255]], np.uint8)], 2)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    got = pixels(decode_image(tmp_path / "la.png", (0.0, 0.0, 0.0)))
    np.testing.assert_array_equal(got[:, :, 0], (200 * la[:, :, 1].astype(int) + 127) // 255)
    Image.fromarray(np.array([[0, 255]], np.uint8)).convert("1").save(tmp_path / "b.png")
    np.testing.assert_array_equal(pixels(decode_image(tmp_path / "b.png"))[0], [[0] * 3, [255] * 3])


def test_every_listed_format_pillow_reads_works(tmp_path):
    rgb = photo(16, 16)
    for ext in ("ppm", "tga", "pcx"):
        Image.fromarray(rgb).save(tmp_path / f"img_{ext}.{ext.upper()}")
    Image.fromarray(rgb).save(tmp_path / "default.png")
    plain = load_stimulus_folder(tmp_path)
    assert plain.ids == ["default"]
    wide = load_stimulus_folder(tmp_path, {"extensions": ["png", ".PPM", "tga", "pcx"]})
    assert wide.ids == ["default", "img_pcx", "img_ppm", "img_tga"]
    for path in wide.paths:
        np.testing.assert_array_equal(pixels(decode_image(path)), rgb)
    with pytest.raises(StimulusError, match=r"Pillow cannot read \.heic"):
        load_stimulus_folder(tmp_path, {"extensions": ["png", "heic"]})


def test_damaged_files_are_named_with_a_reason(tmp_path):
    bad = truncated_jpeg(tmp_path / "cut.jpg")
    with pytest.raises(StimulusError, match=r"cut\.jpg.*truncated"):
        decode_image(bad)
    assert "truncated" in check_image(bad)
    notes = text_named_png(tmp_path / "notes.png")
    with pytest.raises(StimulusError, match=r"notes\.png.*not an image"):
        load_rgb(notes, GREY)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    bomb = png_bomb(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 1000  # tiny file, 10 gigapixel header
    with pytest.raises(StimulusError, match=r"bomb\.png.*max_image_pixels"):
        decode_image(bomb)
    assert "max_image_pixels" in check_image(bomb)
    # The set's own limit decides, below and above Pillow's.
    Image.fromarray(photo(50, 40)).save(tmp_path / "big.png")
    with pytest.raises(StimulusError, match=r"50 = 2,000 pixels, more than max_image_pixels"):
        decode_image(tmp_path / "big.png", max_image_pixels=1999)
    assert decode_image(tmp_path / "big.png", max_image_pixels=2000).size == (40, 50)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_raising_the_limit_lets_pillows_own_guard_through(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow refuses > 200 pixels
    Image.fromarray(photo(30, 30)).save(tmp_path / "x.png")  # 900 pixels
    with pytest.raises(StimulusError, match="max_image_pixels"):
        decode_image(tmp_path / "x.png", max_image_pixels=500)
    assert decode_image(tmp_path / "x.png", max_image_pixels=1000).size == (30, 30)
    assert decode_image(tmp_path / "x.png", max_image_pixels=None).size == (30, 30)


# ------------------------------------------------------------- in an extraction


FAILING_BUILDER = textwrap.dedent(
    """
    import pathlib

    def build(marker):
        pathlib.Path(marker).write_text("built")
        raise RuntimeError("the model was built")

    def build_and_remove(target):
        import torch
        pathlib.Path(target).unlink()
        return torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten())
    """
)


def _python_spec(tmp_path, function: str, **kwargs) -> ModelSpec:
    module = tmp_path / "builders.py"
    module.write_text(FAILING_BUILDER)
    return ModelSpec.from_config(
        "m",
        {
            "source": "python",
            "name": f"{module}:{function}",
            "kwargs": kwargs,
            "layers": ["0"],
            "reduce": "mean",
            "preprocess": {"preset": "none", "size": 16},
            "batch_size": 2,
        },
    )


def _options(**kw) -> ExtractionOptions:
    return ExtractionOptions.from_config({"progress": False, **kw})


def test_bad_files_are_all_listed_before_any_model_is_built(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(photo(20, 24, seed=i)).save(folder / f"ok_{i}.jpg")
    truncated_jpeg(folder / "cut.jpg")
    text_named_png(folder / "readme.png")
    png_bomb(folder / "bomb.png")
    marker = tmp_path / "built.txt"
    spec = _python_spec(tmp_path, "build", marker=str(marker))
    with pytest.raises(StimulusError) as caught:
        extract_activations(spec, load_stimulus_folder(folder), tmp_path / "o.h5", _options())
    message = str(caught.value)
    assert "3 of 7 image(s)" in message
    for name in ("cut.jpg", "readme.png", "bomb.png"):
        assert name in message
    assert "on_bad_image: skip" in message
    assert not marker.exists()  # the model was never built
    assert not (tmp_path / "o.h5").exists()


def test_skip_leaves_bad_files_out_and_records_them(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(photo(20, 24, seed=i)).save(folder / f"ok_{i}.jpg")
    truncated_jpeg(folder / "cut.jpg")
    png_bomb(folder / "bomb.png")
    spec = _python_spec(tmp_path, "build_and_remove", target=str(tmp_path / "spare.txt"))
    (tmp_path / "spare.txt").write_text("")
    out = extract_activations(
        spec, load_stimulus_folder(folder), tmp_path / "s.h5", _options(on_bad_image="skip")
    )
    with h5py.File(out, "r") as f:
        assert [s.decode() for s in f["m/stimulus_ids"][()]] == ["ok_0", "ok_1", "ok_2"]
        assert sorted(__import__("json").loads(f["m"].attrs["skipped_ids"])) == ["bomb", "cut"]


@pytest.mark.parametrize("on_bad_image", ["error", "skip"])
def test_a_file_removed_during_the_run_is_named(tmp_path, on_bad_image):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(photo(20, 24, seed=i)).save(folder / f"img_{i}.png")
    stimuli = load_stimulus_folder(folder)
    # The model's builder removes an image: after the check, before it is decoded.
    spec = _python_spec(tmp_path, "build_and_remove", target=str(folder / "img_2.png"))
    with pytest.raises(FolderChangedError, match=r"img_2\.png.*gone.*changed during the run"):
        extract_activations(spec, stimuli, tmp_path / "o.h5", _options(on_bad_image=on_bad_image))
    assert not (tmp_path / "o.h5").exists()


def test_a_file_rewritten_after_listing_is_named(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(photo(20, 24, seed=i)).save(folder / f"img_{i}.png")
    stimuli = load_stimulus_folder(folder)
    Image.fromarray(photo(30, 30, seed=9)).save(folder / "img_1.png")
    with pytest.raises(FolderChangedError, match=r"img_1\.png.*changed after the job listed"):
        decode_image(stimuli.paths[1], listed=stimuli.listed(1))
    with pytest.raises(StimulusError, match=r"img_1\.png.*changed"):
        extract_activations(
            _python_spec(tmp_path, "build", marker=str(tmp_path / "m")),
            stimuli,
            tmp_path / "o.h5",
            _options(),
        )
    assert not (tmp_path / "m").exists()  # caught by the check, before the model


def test_a_link_to_nothing_is_a_bad_image_not_a_changed_folder(tmp_path):
    import os

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(photo(20, 24)).save(folder / "ok.png")
    os.symlink(tmp_path / "moved_away.png", folder / "link.png")
    stimuli = load_stimulus_folder(folder)
    assert stimuli.ids == ["link", "ok"]
    problem = check_image(stimuli.paths[0], listed=stimuli.listed(0))
    assert "link.png" in problem and "changed" not in problem
    with pytest.raises(StimulusError) as caught:
        decode_image(stimuli.paths[0], listed=stimuli.listed(0))
    assert not isinstance(caught.value, FolderChangedError)
