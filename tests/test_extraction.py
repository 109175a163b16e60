"""Extraction: hooked activations, reductions, jitter, determinism, storage, bad input."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from actpipe.extraction import ExtractionOptions, LayerError, extract_activations, reduce_output
from actpipe.models import ModelSpec, WeightsError, build_model
from actpipe.preprocess import Jitter, expose, prepare_image, resolve_preprocess
from actpipe.stimuli import StimulusError, load_stimulus_folder, materialise_stimuli

SIZE = 32


def resnet_spec(**overrides) -> ModelSpec:
    block = {
        "source": "torchvision",
        "name": "resnet18",
        "weights": "random",
        "seed": 3,
        "layers": [
            "layer1",
            {"name": "layer2", "reduce": "mean"},
            {"name": "layer4", "reduce": "max"},
            "avgpool",
        ],
        "preprocess": {"preset": "imagenet", "size": SIZE, "resize": SIZE},
        "batch_size": 4,
    }
    block.update(overrides)
    return ModelSpec.from_config("resnet18", block)


@pytest.fixture(scope="module")
def gratings(tmp_path_factory):
    root = tmp_path_factory.mktemp("stim") / "gratings"
    return materialise_stimuli(
        {
            "source": "gratings",
            "size": SIZE,
            "orientations": 3,
            "phases": 2,
            "spatial_frequencies": [2],
        },
        root,
    )


def options(**kw) -> ExtractionOptions:
    block = {
        "n_replicates": 2,
        "seed": 0,
        "progress": False,
        "jitter": {"translate": 2, "rotate": 10},
    }
    block.update(kw)
    return ExtractionOptions.from_config(block)


def expected_inputs(spec, stimuli, opts):
    tensors, records = [], []
    for sid, path in zip(stimuli.ids, stimuli.paths, strict=True):
        x, rec = expose(
            prepare_image(path, spec.preprocess),
            sid,
            opts.n_replicates,
            opts.jitter,
            spec.preprocess,
        )
        tensors.append(x)
        records.append(rec)
    return torch.cat(tensors), np.stack(records)


def test_hooked_activations_equal_independent_feature_extraction(gratings, tmp_path):
    from torchvision.models.feature_extraction import create_feature_extractor

    spec = resnet_spec()
    opts = options()
    out = extract_activations(spec, gratings, tmp_path / "r.h5", opts, "gratings")
    inputs, records = expected_inputs(spec, gratings, opts)
    model, _ = build_model(spec)
    extractor = create_feature_extractor(
        model, return_nodes=["layer1", "layer2", "layer4", "avgpool"]
    )
    with torch.no_grad():
        reference = extractor(inputs)
    n = len(gratings)
    expected = {
        "layer1": reference["layer1"].flatten(1),
        "layer2": reference["layer2"].mean(dim=(2, 3)),
        "layer4": reference["layer4"].amax(dim=(2, 3)),
        "avgpool": reference["avgpool"].flatten(1),
    }
    with h5py.File(out, "r") as f:
        group = f["resnet18"]
        assert [s.decode() for s in group["stimulus_ids"][()]] == gratings.ids
        np.testing.assert_array_equal(group["jitter"][()], records)
        for name, ref in expected.items():
            data = group["layers"][name]
            ref = ref.numpy().reshape(n, 2, -1)
            assert data.shape == ref.shape
            np.testing.assert_allclose(data[()], ref, atol=1e-6, rtol=0)
        assert tuple(group["layers/layer1"].attrs["original_shape"]) == (64, SIZE // 4, SIZE // 4)
        assert group["layers/layer2"].attrs["reduce_applied"] == "mean"
        assert f.attrs["format_version"] == 2


def test_jitter_is_recorded_seeded_and_replicate0_untouched(gratings):
    jitter = Jitter(translate=3, rotate=15, scale=(0.9, 1.1), seed=5)
    assert jitter.draw("a", 0) == (0.0, 0.0, 0.0, 1.0)
    assert jitter.draw("a", 1) == jitter.draw("a", 1)
    assert jitter.draw("a", 1) != jitter.draw("b", 1)
    dx, dy, angle, scale = jitter.draw("a", 2)
    assert abs(dx) <= 3 and abs(dy) <= 3 and abs(angle) <= 15 and 0.9 <= scale <= 1.1
    pre = resolve_preprocess({"preset": "none", "size": SIZE, "resize": SIZE})
    image = prepare_image(gratings.paths[0], pre)
    exposures, _ = expose(image, gratings.ids[0], 2, Jitter(translate=0, rotate=0), pre)
    assert torch.equal(exposures[0], image) and torch.equal(exposures[1], image)
    shifted, rec = expose(image, "x", 2, Jitter(translate=4, seed=1), pre)
    dx, dy = int(rec[1, 0]), int(rec[1, 1])
    # A pure integer translation moves pixels: compare the overlapping region.
    h = SIZE
    src = image[:, max(0, -dy) : h - max(0, dy), max(0, -dx) : h - max(0, dx)]
    dst = shifted[1][:, max(0, dy) : h - max(0, -dy), max(0, dx) : h - max(0, -dx)]
    torch.testing.assert_close(dst, src)


def test_reductions_on_token_and_vector_outputs():
    tokens = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    assert torch.equal(reduce_output(tokens, "cls", "t")[0], tokens[:, 0])
    assert torch.equal(reduce_output(tokens, "mean", "t")[0], tokens.mean(dim=1))
    assert torch.equal(reduce_output(tokens, "flatten", "t")[0], tokens.reshape(2, 12))
    vec = torch.ones(2, 5)
    features, applied = reduce_output(vec, "mean", "fc")
    assert torch.equal(features, vec) and applied == "none"
    with pytest.raises(LayerError, match="'cls' needs"):
        reduce_output(torch.ones(1, 2, 3, 3), "cls", "conv")


def test_two_runs_give_identical_bytes(gratings, tmp_path):
    spec = resnet_spec()
    a = extract_activations(spec, gratings, tmp_path / "a.h5", options(), "g")
    b = extract_activations(spec, gratings, tmp_path / "b.h5", options(), "g")
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        for name in spec.layer_names:
            da, db = fa[f"resnet18/layers/{name}"][()], fb[f"resnet18/layers/{name}"][()]
            assert da.tobytes() == db.tobytes()
        assert fa["resnet18"].attrs["weights"] == fb["resnet18"].attrs["weights"]


def test_vit_cls_and_float16_storage(gratings, tmp_path):
    spec = ModelSpec.from_config(
        "vit",
        {
            "source": "timm",
            "name": "vit_tiny_patch16_224",
            "kwargs": {"img_size": SIZE},
            "layers": ["blocks.1", {"name": "blocks.1.attn", "reduce": "flatten"}],
            "reduce": "cls",
            "preprocess": {"size": SIZE, "resize": SIZE},
            "batch_size": 3,
        },
    )
    opts = ExtractionOptions.from_config(
        {"n_replicates": 1, "progress": False}, {"dtype": "float16", "compression": "gzip"}
    )
    out = extract_activations(spec, gratings, tmp_path / "v.h5", opts, "g")
    model, _ = build_model(spec)
    inputs, _ = expected_inputs(spec, gratings, opts)
    seen = {}
    model.blocks[1].register_forward_hook(lambda m, i, o: seen.setdefault("b", o))
    with torch.no_grad():
        model(inputs)
    with h5py.File(out, "r") as f:
        data = f["vit/layers/blocks.1"]
        assert data.dtype == np.float16 and data.compression == "gzip"
        np.testing.assert_allclose(data[:, 0, :], seen["b"][:, 0, :].numpy(), rtol=2e-3, atol=2e-3)
        assert f["vit/layers/blocks.1.attn"].shape == (len(gratings), 1, 5 * 192)


def test_unknown_layer_names_the_model_and_close_names(gratings, tmp_path):
    spec = resnet_spec(layers=["layer1", "layr2"])
    with pytest.raises(LayerError, match=r"model 'resnet18': no layer 'layr2'.*layer2"):
        extract_activations(spec, gratings, tmp_path / "x.h5", options())
    assert not (tmp_path / "x.h5").exists()
    assert not list(tmp_path.glob(".*partial"))


def test_corrupt_image_error_or_skip(gratings, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for path in gratings.paths[:3]:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "zz_broken.png").write_bytes(gratings.paths[3].read_bytes()[:60])
    stimuli = load_stimulus_folder(folder)
    with pytest.raises(StimulusError, match="zz_broken.png"):
        extract_activations(resnet_spec(), stimuli, tmp_path / "e.h5", options())
    assert not (tmp_path / "e.h5").exists()
    out = extract_activations(
        resnet_spec(), stimuli, tmp_path / "s.h5", options(on_bad_image="skip")
    )
    with h5py.File(out, "r") as f:
        assert f["resnet18/layers/layer1"].shape[0] == 3
        assert [s.decode() for s in f["resnet18/stimulus_ids"][()]] == stimuli.ids[:3]
        assert "zz_broken" in f["resnet18"].attrs["skipped_ids"]


def test_interrupted_extraction_keeps_the_previous_file(gratings, tmp_path, monkeypatch):
    out = extract_activations(resnet_spec(), gratings, tmp_path / "r.h5", options())
    before = out.read_bytes()
    import actpipe.extraction.run as run

    def broken(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(run.ActivationWriter, "write_rows", broken)
    with pytest.raises(KeyboardInterrupt):
        extract_activations(resnet_spec(), gratings, tmp_path / "r.h5", options())
    assert out.read_bytes() == before
    assert not list(tmp_path.glob(".*partial"))


def test_weights_from_local_checkpoint_and_offline_pretrained(gratings, tmp_path):
    spec = resnet_spec(seed=11)
    model, info = build_model(spec)
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, tmp_path / "ckpt.pth")
    loaded, info2 = build_model(resnet_spec(weights=str(tmp_path / "ckpt.pth")))
    assert info2["state_dict_sha256"] == info["state_dict_sha256"]
    assert info2["kind"] == "file" and len(info2["sha256"]) == 64
    wrong = ModelSpec.from_config(
        "r34",
        {
            "source": "torchvision",
            "name": "resnet34",
            "weights": str(tmp_path / "ckpt.pth"),
            "layers": ["layer1"],
        },
    )
    with pytest.raises(WeightsError, match="Missing keys"):
        build_model(wrong)


def test_unreadable_image_in_folder_is_named(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "ok.png")
    (folder / "bad.jpg").write_bytes(b"garbage")
    stimuli = load_stimulus_folder(folder)
    with pytest.raises(StimulusError, match="bad.jpg"):
        extract_activations(resnet_spec(), stimuli, tmp_path / "o.h5", options())
