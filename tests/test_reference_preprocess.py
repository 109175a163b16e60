"""Input tensors and features equal to the reference pipelines people run elsewhere.

References are built here from the libraries themselves: torchvision's weights transforms and
its classic ``Resize(256)/CenterCrop(224)/ToTensor/Normalize``, timm's
``resolve_data_config`` + ``create_transform``, OpenAI CLIP's preprocessing, and a by-hand
Pillow resize and crop; each is applied to the image as torchvision's ``ImageFolder`` loader
reads it (``Image.open(...).convert("RGB")``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from actpipe.extraction import ExtractionOptions, extract_activations
from actpipe.models import ModelSpec, build_model
from actpipe.preprocess import (
    CLIP_MEAN,
    CLIP_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Jitter,
    expose,
    prepare_image,
    resolve_preprocess,
)
from actpipe.stimuli import load_stimulus_folder
from tests.helpers.images import photo

# Non-square photos of odd sizes (one smaller than the crop), a grey JPEG and a PNG with alpha.
SIZES = {"wide": (257, 333), "tall": (403, 181), "small": (100, 150), "camera": (375, 500)}
BACKGROUND = (0.5, 0.5, 0.5)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for i, (name, (h, w)) in enumerate(SIZES.items()):
        Image.fromarray(photo(h, w, seed=i)).save(folder / f"{name}.jpg", quality=90)
    Image.fromarray(photo(211, 300, seed=7)[:, :, 0]).save(folder / "grey.jpg", quality=90)
    alpha = np.broadcast_to(np.linspace(0, 255, 230).astype(np.uint8), (190, 230))
    rgba = np.dstack([photo(190, 230, seed=8), alpha])
    Image.fromarray(rgba, "RGBA").save(folder / "logo.png")
    return load_stimulus_folder(folder)


def reference_image(path) -> Image.Image:
    """The image as torchvision's ImageFolder loader reads it; transparent pixels composited
    onto grey with Pillow first (that loader would drop the alpha channel)."""
    with Image.open(path) as img:
        if img.mode == "RGBA":
            grey = Image.new("RGBA", img.size, (128, 128, 128, 255))
            return Image.alpha_composite(grey, img).convert("RGB")
        return img.convert("RGB")


def actpipe_input(path, pre, sid="x") -> torch.Tensor:
    """Replicate 0 of actpipe's exposures: the normalised input tensor."""
    return expose(prepare_image(path, pre), sid, 1, Jitter(), pre)[0][0]


def assert_inputs_equal(stimuli, pre, reference) -> None:
    for path in stimuli.paths:
        ours = actpipe_input(path, pre)
        theirs = reference(reference_image(path))
        assert ours.shape == theirs.shape, path.name
        diff = (ours - theirs).abs().max().item()
        assert diff <= 1e-6, f"{path.name}: max |difference| {diff}"


def spec_of(source, name, preprocess="auto", **block) -> ModelSpec:
    return ModelSpec.from_config(
        "m", {"source": source, "name": name, "layers": ["x"], "preprocess": preprocess, **block}
    )


# --------------------------------------------------------------------------- inputs


@pytest.mark.parametrize("arch", ["resnet50", "efficientnet_b0", "swin_t"])
def test_torchvision_auto_equals_the_default_weights_transforms(photos, arch):
    from torchvision.models import get_model_weights

    weights = get_model_weights(arch).DEFAULT
    pre = spec_of("torchvision", arch).preprocess
    assert pre.preset == "auto:torchvision" and pre.reference == f"torchvision {weights}"
    assert_inputs_equal(photos, pre, weights.transforms())


def test_imagenet_preset_equals_the_classic_transform(photos):
    classic = T.Compose(
        [T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )
    assert_inputs_equal(photos, resolve_preprocess("imagenet"), classic)


@pytest.mark.parametrize(
    "name",
    [
        "convnext_tiny",  # crop_pct 0.95, bicubic
        "resnet10t",  # input 176
        "vit_base_patch16_clip_224.openai",  # CLIP image tower: CLIP mean/std, bicubic
        "convnext_base.fb_in22k_ft_in1k_384",  # crop_mode squash
    ],
)
def test_timm_auto_equals_create_transform_of_the_pretrained_config(photos, name):
    import timm
    from timm.data import create_transform, resolve_data_config

    config = resolve_data_config(pretrained_cfg=timm.get_pretrained_cfg(name).to_dict())
    pre = spec_of("timm", name).preprocess
    assert pre.preset == "auto:timm" and pre.crop_mode == (config["crop_mode"] or "center")
    assert_inputs_equal(photos, pre, create_transform(**config))


def test_timm_border_crop_mode_equals_create_transform(photos):
    from timm.data import create_transform

    reference = create_transform(
        input_size=160,
        crop_pct=0.9,
        crop_mode="border",
        interpolation="bilinear",
        mean=CLIP_MEAN,
        std=CLIP_STD,
    )
    pre = resolve_preprocess(
        {
            "preset": "clip",
            "size": 160,
            "resize": math.floor(160 / 0.9),
            "crop_mode": "border",
            "interpolation": "bilinear",
        }
    )
    assert_inputs_equal(photos, pre, reference)


def test_clip_preset_equals_openai_clip_preprocessing(photos):
    openai = T.Compose(
        [
            T.Resize(224, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(224),
            T.ToTensor(),
            T.Normalize(CLIP_MEAN, CLIP_STD),
        ]
    )
    assert_inputs_equal(photos, resolve_preprocess("clip"), openai)


def test_explicit_settings_are_pillow_resize_and_crop_by_hand(photos):
    """What ``source: onnx`` (and every explicit setting) gets: shorter side to ``resize``
    with Pillow's filter, centre crop at the rounded offset."""
    pre = resolve_preprocess({"preset": "none", "size": 60, "resize": 71, "interpolation": "box"})
    for path in photos.paths:
        img = reference_image(path)
        w, h = img.size
        scale = 71 / min(w, h)
        new = (71, int(71 * h / w)) if w <= h else (int(71 * w / h), 71)
        assert abs(new[0] - w * scale) < 1 and abs(new[1] - h * scale) < 1
        img = img.resize(new, Image.BOX)
        left, top = int(round((new[0] - 60) / 2)), int(round((new[1] - 60) / 2))
        expected = np.asarray(img.crop((left, top, left + 60, top + 60)), np.float32) / 255
        ours = prepare_image(path, pre).permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(ours, expected)


def test_replicate_zero_is_the_reference_and_the_others_are_jittered(photos):
    pre = resolve_preprocess("imagenet")
    path = photos.paths[0]
    reference = T.Compose(
        [T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )(reference_image(path))
    jitter = Jitter(translate=4, rotate=10, seed=3)
    exposures, record = expose(prepare_image(path, pre), "wide", 3, jitter, pre)
    assert torch.equal(exposures[0], reference)
    assert tuple(record[0]) == (0.0, 0.0, 0.0, 1.0)
    for r in (1, 2):
        assert (exposures[r] - reference).abs().max() > 0.1


def test_16_bit_images_follow_the_8_bit_path_without_rounding(tmp_path):
    """A 16-bit PNG holding exactly the values of an 8-bit one (v * 257) is resized as float
    with the same filter: the result differs from the 8-bit path by at most one 8-bit step
    (Pillow's 8-bit resize rounds after each of its two passes)."""
    gray8 = photo(97, 131, seed=3)[:, :, 1]
    Image.fromarray(gray8).save(tmp_path / "eight.png")
    Image.fromarray(gray8.astype(np.uint16) * 257).save(tmp_path / "sixteen.png")
    for interpolation in ("bilinear", "bicubic", "lanczos"):
        pre = resolve_preprocess(
            {"preset": "none", "size": 40, "resize": 45, "interpolation": interpolation}
        )
        eight = prepare_image(tmp_path / "eight.png", pre)
        sixteen = prepare_image(tmp_path / "sixteen.png", pre)
        assert sixteen.shape == eight.shape == (3, 40, 40)
        assert (sixteen - eight).abs().max() <= 1 / 255 + 1e-6
        assert (sixteen - eight).abs().mean() < 0.3 / 255
        assert (sixteen - eight).abs().max() > 0  # not rounded to 8 bits
    same = resolve_preprocess({"preset": "none"})
    torch.testing.assert_close(
        prepare_image(tmp_path / "sixteen.png", same), prepare_image(tmp_path / "eight.png", same)
    )


# --------------------------------------------------------------------------- features


class _Enough(Exception):
    """Raised by the hook: the layer has run, the rest of the network is not needed."""


def reference_features(spec: ModelSpec, transform_of, stimuli, layer: str) -> torch.Tensor:
    """``layer``'s output for the reference pipeline's inputs, on the same model (seeded).

    ``transform_of(model)`` gives the reference transform.
    """
    model, _ = build_model(spec)
    model.eval()
    transform = transform_of(model)
    batch = torch.stack([transform(reference_image(p)) for p in stimuli.paths])
    seen = {}

    def keep(module, inputs, output):
        seen["x"] = output
        raise _Enough

    handle = dict(model.named_modules())[layer].register_forward_hook(keep)
    with torch.inference_mode():
        try:
            model(batch)
        except _Enough:
            pass
    handle.remove()
    return seen["x"]


def timm_reference(model):
    """timm's evaluation transform for a built model: ``create_transform`` of
    ``resolve_data_config(model=model)``."""
    from timm.data import create_transform, resolve_data_config

    return create_transform(**resolve_data_config(model=model))


def extracted(spec: ModelSpec, stimuli, tmp_path, layer: str) -> np.ndarray:
    import h5py

    out = extract_activations(
        spec, stimuli, tmp_path / "a.h5", ExtractionOptions.from_config({"progress": False})
    )
    with h5py.File(out, "r") as f:
        return f[f"m/layers/{layer}"][:, 0, :]


def test_resnet50_features_equal_the_classic_pipeline(photos, tmp_path):
    """The issue's case: actpipe's resnet50 against Resize 256 / CenterCrop 224 / ToTensor /
    Normalize on the same random weights and images."""
    block = {"layers": ["layer4"], "reduce": "flatten", "batch_size": len(photos)}
    spec = spec_of("torchvision", "resnet50", "imagenet", **block)
    classic = T.Compose(
        [T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )
    expected = reference_features(spec, lambda model: classic, photos, "layer4")
    expected = expected.flatten(1).numpy()
    got = extracted(spec, photos, tmp_path, "layer4")
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * scale)


def test_timm_convnext_features_equal_create_transform_pipeline(photos, tmp_path):
    block = {"layers": ["stages.2"], "reduce": "mean", "batch_size": len(photos)}
    spec = spec_of("timm", "convnext_tiny", **block)
    expected = reference_features(spec, timm_reference, photos, "stages.2").mean(dim=(2, 3))
    got = extracted(spec, photos, tmp_path, "stages.2")
    scale = expected.abs().max().item()
    np.testing.assert_allclose(got, expected.numpy(), rtol=0, atol=1e-5 * scale)


def test_clip_tower_features_equal_create_transform_pipeline(photos, tmp_path):
    block = {"layers": ["blocks.2"], "reduce": "cls", "batch_size": len(photos)}
    spec = spec_of("timm", "vit_base_patch16_clip_224.openai", **block)
    assert spec.preprocess.mean == CLIP_MEAN
    expected = reference_features(spec, timm_reference, photos, "blocks.2")[:, 0]
    got = extracted(spec, photos, tmp_path, "blocks.2")
    scale = expected.abs().max().item()
    np.testing.assert_allclose(got, expected.numpy(), rtol=0, atol=1e-5 * scale)


def test_schema_offers_what_the_code_accepts():
    import yaml

    from actpipe.preprocess import CROP_MODES, PRESETS
    from tests.helpers.workflow import REPO

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    mapping = schema["$defs"]["preprocess"]["oneOf"][1]["properties"]
    assert mapping["crop_mode"]["enum"] == list(CROP_MODES)
    assert mapping["preset"]["enum"] == ["auto", *PRESETS]
    for name in mapping["interpolation"]["enum"]:
        resolve_preprocess({"interpolation": name})  # each is a Pillow filter torchvision maps
    with pytest.raises(ValueError, match="crop_mode 'squash' needs a 'size'"):
        resolve_preprocess({"preset": "none", "crop_mode": "squash"})
