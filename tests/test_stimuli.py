"""Generated stimulus sets and the folder code path."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from actpipe.stimuli import StimulusError, load_rgb, load_stimulus_folder, materialise_stimuli
from actpipe.stimuli.digits import load_digits_arrays


def test_gratings_follow_the_sinusoid(tmp_path):
    spec = {
        "source": "gratings",
        "size": 32,
        "orientations": [0.0, 90.0],
        "phases": [90.0],
        "spatial_frequencies": [2.0],
    }
    stimuli = materialise_stimuli(spec, tmp_path / "g")
    assert len(stimuli) == 2
    assert stimuli.labels["orientation"] == ["0.0", "90.0"]
    vertical = np.asarray(Image.open(stimuli.paths[0]), dtype=np.float64) / 255.0
    # Orientation 0: luminance depends on x only, 0.5 + 0.5 sin(2 pi f x + phase).
    x = (np.arange(32) - 15.5) / 32
    expected = 0.5 + 0.5 * np.sin(2 * np.pi * 2.0 * x + np.pi / 2)
    np.testing.assert_allclose(vertical, np.tile(expected, (32, 1)), atol=1 / 255)
    horizontal = np.asarray(Image.open(stimuli.paths[1]), dtype=np.float64) / 255.0
    np.testing.assert_allclose(horizontal, vertical.T[::-1], atol=1 / 255)


def test_gratings_grid_labels_and_seeded_noise(tmp_path):
    spec = {
        "source": "gratings",
        "size": 16,
        "orientations": 4,
        "phases": 2,
        "spatial_frequencies": [1, 3],
        "noise_std": 0.1,
        "seed": 7,
    }
    a = materialise_stimuli(spec, tmp_path / "a")
    b = materialise_stimuli(spec, tmp_path / "b")
    assert len(a) == 4 * 2 * 2
    assert sorted({float(o) for o in a.labels["orientation"]}) == [0.0, 45.0, 90.0, 135.0]
    assert sorted({float(f) for f in a.labels["spatial_frequency"]}) == [1.0, 3.0]
    for pa, pb in zip(a.paths, b.paths, strict=True):
        assert np.array_equal(np.asarray(Image.open(pa)), np.asarray(Image.open(pb)))
    c = materialise_stimuli({**spec, "seed": 8}, tmp_path / "c")
    assert not np.array_equal(
        np.asarray(Image.open(a.paths[0])), np.asarray(Image.open(c.paths[0]))
    )


def test_digits_are_sklearn_digits_upscaled(tmp_path):
    stimuli = materialise_stimuli(
        {"source": "digits", "size": 24, "n": 30, "seed": 0}, tmp_path / "d"
    )
    images, targets = load_digits_arrays()
    assert len(stimuli) == 30
    counts = np.bincount([int(d) for d in stimuli.labels["digit"]], minlength=10)
    assert counts.min() == counts.max() == 3  # class-balanced
    for sid, digit, path in zip(stimuli.ids, stimuli.labels["digit"], stimuli.paths, strict=True):
        index = int(sid.split("_")[1])
        assert int(digit) == targets[index]
        pixels = np.asarray(Image.open(path), dtype=np.float64)
        assert pixels.shape == (24, 24)
        # Block means of the upscaled image follow the original 8x8 intensities.
        blocks = pixels.reshape(8, 3, 8, 3).mean(axis=(1, 3)) / 255.0 * 16.0
        assert np.corrcoef(blocks.ravel(), images[index].ravel())[0, 1] > 0.9


def test_folder_with_labels_and_ids(tmp_path):
    for name in ("b", "a", "c"):
        Image.fromarray(np.full((8, 8), 100, np.uint8)).save(tmp_path / f"{name}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    with open(tmp_path / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerows([["stimulus_id", "category"], ["a", "x"], ["b", "y"], ["c", "x"]])
    stimuli = load_stimulus_folder(tmp_path)
    assert stimuli.ids == ["a", "b", "c"]
    assert stimuli.labels == {"category": ["x", "y", "x"]}


def test_folder_errors(tmp_path):
    with pytest.raises(StimulusError, match="does not exist"):
        load_stimulus_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StimulusError, match="holds no images"):
        load_stimulus_folder(tmp_path / "empty")
    dup = tmp_path / "dup"
    dup.mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(dup / "x.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(dup / "x.jpg")
    with pytest.raises(StimulusError, match="ambiguous"):
        load_stimulus_folder(dup)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(StimulusError, match="bad.png"):
        load_rgb(bad, (0.5, 0.5, 0.5))


def test_alpha_grayscale_and_16bit_decoding(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[0, 0, 3] = 255  # opaque red
    rgba[0, 1, 3] = 0  # transparent -> background
    rgba[1, :, 3] = 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = load_rgb(tmp_path / "a.png", (0.0, 0.0, 1.0))
    np.testing.assert_allclose(out[0, 0], [1, 0, 0])
    np.testing.assert_allclose(out[0, 1], [0, 0, 1])
    np.testing.assert_allclose(out[1, 0], [128 / 255, 0, 1 - 128 / 255], atol=1e-6)
    Image.fromarray(np.array([[0, 255]], np.uint8), "L").save(tmp_path / "g.png")
    np.testing.assert_allclose(load_rgb(tmp_path / "g.png", (0, 0, 0))[0, 1], [1, 1, 1])
    Image.fromarray(np.array([[0, 65535, 32768]], np.uint16)).save(tmp_path / "w.png")
    np.testing.assert_allclose(
        load_rgb(tmp_path / "w.png", (0, 0, 0))[0, :, 0], [0, 1, 32768 / 65535], atol=1e-6
    )
