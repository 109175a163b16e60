"""The class token's attention laid over the example's image: where the model's input lies on
the image (:func:`actpipe.preprocess.input_region`), the picture drawn under the map
(:func:`actpipe.site.thumbnails.render_model_input`) against the tensor the model was given,
and the maps read from the activation file against plain h5py.
"""

from __future__ import annotations

import io

import h5py
import numpy as np
import pytest
from PIL import Image

from actpipe.attention import attention_summary, read_cls_attention
from actpipe.extraction import ExtractionOptions, extract_activations
from actpipe.preprocess import Preprocess, input_region, prepare_image
from actpipe.site.pages.transformer import choose_examples
from actpipe.site.thumbnails import ThumbnailOptions, render_model_input
from actpipe.stimuli.folder import image_files, load_stimulus_folder
from tests.helpers.transformers import probe_spec

LOSSLESS = ThumbnailOptions(size=64, format="webp", quality=100)


def pattern(width: int, height: int, seed: int = 0) -> Image.Image:
    """A picture whose every region differs: smooth colour ramps under a fine checkerboard,
    so a misplaced crop of even a few pixels shows."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 6.28, 3)
    checker = ((x // 6 + y // 6) % 2) * 60.0
    pixels = np.stack(
        [
            40 + 150 * x / width + checker,
            40 + 150 * y / height + checker * 0.5,
            100 + 80 * np.sin(x / 9 + y / 13 + phase[2]) + checker * 0.2,
        ],
        axis=-1,
    )
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def decoded_picture(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64) / 255


def phone_photo(path, width: int = 120, height: int = 80) -> None:
    """A JPEG as a phone writes it: pixels stored landscape, EXIF orientation 6 (shown
    rotated 90 degrees clockwise, so portrait)."""
    img = pattern(width, height, seed=3)
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(path, "JPEG", quality=97, exif=exif)


@pytest.mark.parametrize(
    "size, pre",
    [
        ((120, 80), Preprocess(size=48, resize=56)),  # landscape, shorter side then crop
        ((70, 130), Preprocess(size=48, resize=56)),  # portrait
        ((30, 20), Preprocess(size=48, resize=None)),  # smaller than the crop: zero padding
        ((120, 80), Preprocess(size=48, resize=60, crop_mode="squash")),
        ((120, 80), Preprocess(size=48, resize=48, crop_mode="border")),  # mean-colour pad
        ((90, 90), Preprocess(size=None, resize=None, preset="none")),  # the image as it is
        ((120, 80), Preprocess(size=48, resize=56, interpolation="bicubic")),
    ],
    ids=["landscape", "portrait", "small-padded", "squash", "border", "whole", "bicubic"],
)
def test_the_picture_under_the_map_is_the_models_input(tmp_path, size, pre):
    path = tmp_path / "photo.png"
    pattern(*size).save(path)
    data, width, height, region = render_model_input(path, pre, LOSSLESS, max_side=1000)
    model_input = prepare_image(path, pre).numpy().transpose(1, 2, 0).astype(np.float64)
    assert (width, height) == region.size == (model_input.shape[1], model_input.shape[0])
    picture = decoded_picture(data)
    error = np.abs(picture - model_input).mean()
    # The same place of the image: only the resampling filter (Lanczos vs the model's) and
    # the WebP encoding differ. Two pixels off would be far worse.
    shifted = np.abs(np.roll(picture, 2, axis=1) - model_input)[:, 2:-2].mean()
    assert error < 0.035, error
    assert error < shifted / 2, (error, shifted)


def test_a_phone_photo_is_drawn_upright_as_the_model_saw_it(tmp_path):
    path = tmp_path / "IMG_0001.JPG"
    phone_photo(path)
    pre = Preprocess(size=48, resize=56)
    data, width, height, region = render_model_input(path, pre, LOSSLESS, max_side=1000)
    model_input = prepare_image(path, pre).numpy().transpose(1, 2, 0).astype(np.float64)
    assert (width, height) == (48, 48)
    # upright: 80 x 120 once rotated, the shorter side (80) to 56, the longer to 84
    sx, sy = 80 / 56, 120 / 84
    assert region.box == pytest.approx((4 * sx, 18 * sy, 52 * sx, 66 * sy))
    assert np.abs(decoded_picture(data) - model_input).mean() < 0.035


@pytest.mark.parametrize("width, height", [(120, 80), (80, 120), (57, 91), (300, 301)])
def test_input_region_follows_torchvision_resize_and_center_crop(width, height):
    """The region from the sizes alone, against an independent derivation: torchvision's
    Resize(int) keeps the shorter side's scale, CenterCrop rounds the offset."""
    pre = Preprocess(size=48, resize=56)
    region = input_region(width, height, pre)
    if width <= height:
        rw, rh = 56, int(56 * height / width)
    else:
        rw, rh = int(56 * width / height), 56
    left = int(round((rw - 48) / 2.0))
    top = int(round((rh - 48) / 2.0))
    sx, sy = width / rw, height / rh
    expected = (left * sx, top * sy, (left + 48) * sx, (top + 48) * sy)
    assert region.box == pytest.approx(expected)
    assert region.size == (48, 48)


def test_larger_inputs_are_scaled_down_to_max_side(tmp_path):
    path = tmp_path / "big.png"
    pattern(400, 300).save(path)
    pre = Preprocess(size=None, resize=None, preset="none")
    _, width, height, region = render_model_input(path, pre, LOSSLESS, max_side=100)
    assert region.size == (400, 300) and (width, height) == (100, 75)


def test_choose_examples_spreads_them_evenly():
    ids = [f"s{i}" for i in range(10)]
    assert choose_examples(ids, 4) == [0, 2, 5, 7]
    assert choose_examples(ids, 10) == list(range(10))
    assert choose_examples(ids[:3], 64) == [0, 1, 2]


@pytest.fixture(scope="module")
def photos_extracted(tmp_path_factory):
    """A ViT (class token and a distillation token) over JPEGs in class subfolders; the
    class-token row of one block and the full pattern of another stored."""
    tmp = tmp_path_factory.mktemp("overlay")
    root = tmp / "photos"
    for k, (label, size) in enumerate(
        [("cats", (120, 80)), ("cats", (80, 120)), ("dogs", (100, 100)), ("dogs", (64, 96))]
    ):
        (root / label).mkdir(parents=True, exist_ok=True)
        pattern(*size, seed=k).save(root / label / f"IMG_{k:04d}.jpg", "JPEG", quality=90)
    phone_photo(root / "dogs" / "IMG_0009.jpg")
    stimuli = load_stimulus_folder(root, {"recursive": True})
    layers = [
        {"name": "blocks.1.attn.pattern", "reduce": "cls_row"},
        {"name": "blocks.2.attn.pattern", "reduce": "flatten"},
    ]
    spec, _, _ = probe_spec(tmp, "deit_distilled", layers, metrics=["attention_entropy"])
    options = ExtractionOptions(n_replicates=1, progress=False)
    path = extract_activations(spec, stimuli, tmp / "acts.h5", options, "photos")
    return path, root


def test_class_token_maps_are_the_stored_rows(photos_extracted):
    path, root = photos_extracted
    summary = attention_summary(path, "deit_distilled")
    with h5py.File(path, "r") as f:
        ids = f["deit_distilled/stimulus_ids"].asstr()[()].tolist()
        row1 = f["deit_distilled/layers/blocks.1.attn.pattern"][()]
        full2 = f["deit_distilled/layers/blocks.2.attn.pattern"][()]
    assert ids == sorted(image_files(root, {"recursive": True}))
    wanted = [ids[3], ids[0], ids[4]]
    whole = list(read_cls_attention(path, summary, wanted))
    tiny = list(read_cls_attention(path, summary, wanted, read_bytes=1))  # one row at a time
    assert [sid for sid, _ in whole] == [sid for sid, _ in tiny] == wanted
    for (sid, maps), (_, again) in zip(whole, tiny, strict=True):
        i = ids.index(sid)
        expected1 = row1[i, 0, :, 2:].reshape(3, 3, 3)
        np.testing.assert_allclose(maps["blocks.1"]["patches"], expected1, rtol=1e-6)
        np.testing.assert_allclose(maps["blocks.1"]["prefix_share"], row1[i, 0, :, :2].sum(-1))
        cls_row = full2[i, 0].reshape(3, 11, 11)[:, 0]
        np.testing.assert_allclose(maps["blocks.2"]["patches"], cls_row[:, 2:].reshape(3, 3, 3))
        for block in maps:
            np.testing.assert_array_equal(maps[block]["patches"], again[block]["patches"])
        # every query row sums to one: patches and prefix together
        total = maps["blocks.1"]["patches"].sum((1, 2)) + maps["blocks.1"]["prefix_share"]
        np.testing.assert_allclose(total, 1.0, rtol=1e-5)


def test_the_page_lists_a_transformer_without_clustering_runs(photos_extracted, tmp_path):
    """A model with attention metrics that no parameter set clusters (``models:`` scopes)
    still has its page, after the models with runs."""
    import json

    from actpipe.site import build_site
    from actpipe.site.synthetic import synthetic_results

    path, _ = photos_extracted
    root = tmp_path / "results"
    synthetic_results(root, n_stimuli=20, n_models=1)
    summary = attention_summary(path, "deit_distilled")
    summary.pop("patterns")  # the metric tables only
    folder = root / "transformer" / "synthetic" / "deit_distilled"
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(summary))
    site = build_site(root).path
    text = (site / "data" / "index.js").read_text()
    index = json.loads(text[text.index(",") + 1 : text.rindex(")")])
    pages = {p["name"]: p for p in index["pages"]}
    (entry,) = pages["transformer"]["info"]["models"]
    assert (entry["set"], entry["model"], entry["cls"]) == ("synthetic", "deit_distilled", False)
    assert entry["blocks"] == 3 and entry["heads"] == 3
