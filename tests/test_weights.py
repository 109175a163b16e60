"""Weights: safe loading of local files, key checks, prefixes, provenance in the HDF5 file."""

from __future__ import annotations

import hashlib
import json
import os

import h5py
import pytest
import torch

from actpipe.extraction import ExtractionOptions, extract_activations
from actpipe.models import ModelSpec, WeightsError, build_model, check_model, read_checkpoint
from actpipe.stimuli import materialise_stimuli


def spec(weights="random", name="resnet18", **extra) -> ModelSpec:
    block = {
        "source": "torchvision",
        "name": name,
        "weights": str(weights),
        "seed": 1,
        "layers": ["layer1", "avgpool"],
        "reduce": "mean",
        "preprocess": {"preset": "imagenet", "size": 32, "resize": 32},
        "batch_size": 4,
    }
    block.update(extra)
    return ModelSpec.from_config("net", block)


class Payload:
    """Unpickling this object calls os.mkdir(marker): code that must never run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_malicious_pickle_is_refused_and_its_code_never_runs(tmp_path):
    state = build_model(spec())[0].state_dict()
    # The payload is real: an unsafe load runs it.
    proof = tmp_path / "proof_marker"
    torch.save({"state_dict": state, "extra": Payload(proof)}, tmp_path / "proof.pth")
    torch.load(tmp_path / "proof.pth", weights_only=False)
    assert proof.exists()
    # actpipe refuses the same kind of file, and the marker is never created.
    marker = tmp_path / "marker"
    torch.save({"state_dict": state, "extra": Payload(marker)}, tmp_path / "evil.pth")
    with pytest.raises(WeightsError, match="refused to load.*weights_only=True"):
        read_checkpoint(tmp_path / "evil.pth")
    with pytest.raises(WeightsError, match="model 'net'.*refused"):
        build_model(spec(tmp_path / "evil.pth"))
    with pytest.raises(WeightsError, match="model 'net'.*refused"):
        check_model(spec(tmp_path / "evil.pth"))
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_local_file_round_trip_and_sha256_in_the_attributes(tmp_path, suffix):
    model, info = build_model(spec())
    path = tmp_path / f"w{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    else:
        torch.save(model.state_dict(), path)
    stimuli = materialise_stimuli(
        {
            "source": "gratings",
            "size": 32,
            "orientations": 2,
            "phases": 1,
            "spatial_frequencies": [2],
        },
        tmp_path / "g",
    )
    out = extract_activations(
        spec(path), stimuli, tmp_path / "o.h5", ExtractionOptions.from_config({"progress": False})
    )
    with h5py.File(out, "r") as f:
        recorded = json.loads(f["net"].attrs["weights"])
    assert recorded["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert recorded["kind"] == "file" and recorded["strict"] is True
    assert recorded["state_dict_sha256"] == info["state_dict_sha256"]


def test_wrong_architecture_lists_keys_and_non_strict_is_recorded(tmp_path):
    torch.save({"model": build_model(spec())[0].state_dict()}, tmp_path / "r18.pth")
    wrong = spec(tmp_path / "r18.pth", name="resnet34")
    with pytest.raises(WeightsError, match=r"model 'net'.*Missing keys \(\d+\): \['layer1.2"):
        check_model(wrong)  # early, on the meta device
    with pytest.raises(WeightsError, match="Missing keys"):
        build_model(wrong)
    model, info = build_model(spec(tmp_path / "r18.pth", name="resnet34", strict=False))
    assert info["strict"] is False and "layer1.2.conv1.weight" in info["missing_keys"]
    shapes = spec(tmp_path / "r18.pth", name="resnet18", kwargs={"num_classes": 10})
    with pytest.raises(WeightsError, match="other shapes.*fc.weight"):
        check_model(shapes)


def test_prefix_selects_a_sub_model_and_data_parallel_prefix_is_removed(tmp_path):
    state = build_model(spec())[0].state_dict()
    wrapped = {f"module.visual.{k}": v for k, v in state.items()}
    wrapped["module.text.weight"] = torch.zeros(3)
    torch.save({"state_dict": wrapped}, tmp_path / "tower.pt")
    _, info = build_model(spec(tmp_path / "tower.pt", weights_prefix="visual."))
    assert info["prefix"] == "visual." and not info["missing_keys"]
    with pytest.raises(
        WeightsError, match="model 'net': no checkpoint key starts with.*'text.', 'visual.'"
    ):
        build_model(spec(tmp_path / "tower.pt", weights_prefix="image."))


def test_missing_file_and_sources_without_download(tmp_path):
    with pytest.raises(WeightsError, match="model 'net'.*does not exist"):
        build_model(spec(tmp_path / "nope.pth"))
    cornet = ModelSpec.from_config(
        "cs", {"source": "actpipe", "name": "cornet_s", "weights": "pretrained", "layers": ["V1"]}
    )
    with pytest.raises(WeightsError, match="model 'cs'.*local checkpoint"):
        build_model(cornet)
