"""Preprocessing: presets, timm defaults, image modes, and seeded, recorded jitter."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from actpipe.extraction import ExtractionOptions, extract_activations
from actpipe.models import ModelError, ModelSpec
from actpipe.preprocess import (
    CLIP_MEAN,
    IMAGENET_MEAN,
    Jitter,
    prepare_image,
    resolve_preprocess,
)
from actpipe.stimuli import load_stimulus_folder


def test_presets_and_explicit_settings():
    imagenet = resolve_preprocess("imagenet")
    assert (imagenet.size, imagenet.resize, imagenet.interpolation) == (224, 256, "bilinear")
    clip = resolve_preprocess("clip")
    assert clip.mean == CLIP_MEAN and clip.interpolation == "bicubic"
    none = resolve_preprocess("none")
    assert none.size is None and none.mean == (0.0, 0.0, 0.0) and none.std == (1.0, 1.0, 1.0)
    explicit = resolve_preprocess(
        {
            "preset": "imagenet",
            "size": 96,
            "interpolation": "nearest",
            "mean": [0.1, 0.2, 0.3],
            "std": [1, 2, 3],
        }
    )
    assert explicit.size == 96 and explicit.resize == 256 and explicit.std == (1.0, 2.0, 3.0)
    assert resolve_preprocess(None).preset == "auto:imagenet"
    with pytest.raises(ValueError, match="unknown preprocessing preset 'vgg'"):
        resolve_preprocess("vgg")
    with pytest.raises(ValueError, match=r"unknown preprocessing key\(s\) \['crop'\]"):
        resolve_preprocess({"crop": 3})
    with pytest.raises(ValueError, match="unknown interpolation 'cubic'"):
        resolve_preprocess({"interpolation": "cubic"})


def test_timm_models_default_to_their_own_pretrained_config():
    import timm

    spec = ModelSpec.from_config(
        "clip",
        {"source": "timm", "layers": ["blocks.0"], "name": "vit_base_patch16_clip_224.openai"},
    )
    cfg = timm.get_pretrained_cfg("vit_base_patch16_clip_224.openai")
    pre = spec.preprocess
    assert pre.preset == "auto:timm" and pre.reference == "timm vit_base_patch16_clip_224.openai"
    assert pre.mean == tuple(cfg.mean) and pre.interpolation == cfg.interpolation
    assert pre.size == 224 and pre.resize == int(224 / cfg.crop_pct)
    small = ModelSpec.from_config(
        "v",
        {
            "source": "timm",
            "name": "vit_tiny_patch16_224",
            "kwargs": {"img_size": 64},
            "layers": ["blocks.0"],
            "preprocess": {"preset": "auto", "resize": 64},
        },
    )
    assert (small.preprocess.size, small.preprocess.resize) == (64, 64)
    tv = ModelSpec.from_config(
        "r", {"source": "torchvision", "name": "resnet18", "layers": ["layer1"]}
    )
    assert tv.preprocess.mean == IMAGENET_MEAN and tv.preprocess.preset == "auto:torchvision"
    assert tv.preprocess.reference == "torchvision ResNet18_Weights.IMAGENET1K_V1"
    assert (tv.preprocess.resize, tv.preprocess.size) == (256, 224)
    with pytest.raises(ModelError, match="model 'r'.*unknown preprocessing preset"):
        ModelSpec.from_config(
            "r",
            {
                "source": "torchvision",
                "name": "resnet18",
                "layers": ["layer1"],
                "preprocess": "imagenette",
            },
        )


def _pre(**kw):
    return resolve_preprocess({"preset": "none", "size": None, "resize": None, **kw})


def test_rgba_is_composited_onto_the_background(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255  # red ...
    rgba[:, :2, 3] = 255  # ... opaque on the left half, transparent on the right
    rgba[:, 2:, 3] = 0
    rgba[0, 2, 3] = 128  # one half-transparent pixel
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    image = prepare_image(tmp_path / "a.png", _pre(background=[0.0, 0.0, 1.0]))
    torch.testing.assert_close(image[:, 1, 0], torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(image[:, 1, 3], torch.tensor([0.0, 0.0, 1.0]))
    a = 128 / 255
    torch.testing.assert_close(image[:, 0, 2], torch.tensor([a, 0.0, 1 - a]))


def test_gray_palette_and_16_bit_images_become_rgb(tmp_path):
    gray = np.arange(16, dtype=np.uint8).reshape(4, 4) * 16
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    image = prepare_image(tmp_path / "g.png", _pre())
    assert image.shape == (3, 4, 4)
    torch.testing.assert_close(image[1], torch.from_numpy(gray / 255.0).float())
    assert torch.equal(image[0], image[2])

    palette = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), "P")
    palette.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    palette.save(tmp_path / "p.png")
    image = prepare_image(tmp_path / "p.png", _pre())
    torch.testing.assert_close(image[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(image[:, 0, 1], torch.tensor([0.0, 1.0, 0.0]))

    deep = np.array([[0, 65535], [32768, 1000]], np.uint16)
    Image.fromarray(deep).save(tmp_path / "d.png")
    image = prepare_image(tmp_path / "d.png", _pre())
    torch.testing.assert_close(image[0], torch.from_numpy(deep / 65535.0).float())


def test_jitter_is_seeded_configurable_and_recorded(tmp_path):
    folder = tmp_path / "stim"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    stimuli = load_stimulus_folder(folder)
    spec = ModelSpec.from_config(
        "r",
        {
            "source": "torchvision",
            "name": "resnet18",
            "layers": ["layer1"],
            "reduce": "mean",
            "preprocess": {"preset": "imagenet", "size": 24, "resize": 24},
            "batch_size": 4,
        },
    )
    block = {
        "n_replicates": 3,
        "seed": 7,
        "progress": False,
        "jitter": {"translate": 3, "rotate": 20, "scale": [0.9, 1.1]},
    }
    out = extract_activations(
        spec, stimuli, tmp_path / "a.h5", ExtractionOptions.from_config(block)
    )
    jitter = Jitter(translate=3, rotate=20, scale=(0.9, 1.1), seed=7)
    with h5py.File(out, "r") as f:
        recorded = f["r/jitter"][()]
        attrs = json.loads(f["r"].attrs["jitter"])
    assert attrs["translate"] == 3 and attrs["rotate"] == 20 and attrs["scale"] == [0.9, 1.1]
    assert attrs["seed"] == 7
    for i, sid in enumerate(stimuli.ids):
        for r in range(3):
            assert tuple(recorded[i, r]) == jitter.draw(sid, r)
    assert (recorded[:, 1:, 2] != 0).all()  # rotations were drawn
    other = Jitter(translate=3, rotate=20, scale=(0.9, 1.1), seed=8)
    assert other.draw(stimuli.ids[0], 1) != jitter.draw(stimuli.ids[0], 1)
    with pytest.raises(ValueError, match="jitter"):
        ExtractionOptions.from_config({"jitter": {"translate": -1}})
    with pytest.raises(ValueError, match="jitter"):
        ExtractionOptions.from_config({"jitter": {"scale": [1.2, 0.8]}})
