"""The digits CNN: trained by the workflow's function, exported to ONNX, extracted both ways."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from actpipe.extraction import ExtractionOptions, extract_activations
from actpipe.models import ModelSpec, build_model
from actpipe.models.digits_cnn import LAYERS, digits_tensors, split_indices, train_digits_cnn
from actpipe.models.onnx import export_onnx
from actpipe.stimuli import materialise_stimuli

PREPROCESS = {"preset": "none", "size": 32, "resize": 32, "mean": [0.5] * 3, "std": [0.5] * 3}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("digits_cnn")
    weights, metadata = folder / "digits_cnn.safetensors", folder / "digits_cnn.json"
    info = train_digits_cnn(weights, metadata, size=32, epochs=12, seed=0)
    onnx_path = folder / "digits_cnn.onnx"
    model, _ = build_model(torch_spec(weights))
    export_onnx(model, onnx_path, 32, LAYERS)
    return {"weights": weights, "metadata": metadata, "info": info, "onnx": onnx_path}


def torch_spec(weights) -> ModelSpec:
    return ModelSpec.from_config(
        "digits_cnn",
        {
            "source": "actpipe",
            "name": "digits_cnn",
            "weights": str(weights),
            "layers": list(LAYERS),
            "preprocess": PREPROCESS,
            "batch_size": 16,
        },
    )


def onnx_spec(path) -> ModelSpec:
    return ModelSpec.from_config(
        "digits_cnn_onnx",
        {
            "source": "onnx",
            "path": str(path),
            "layers": list(LAYERS),
            "preprocess": PREPROCESS,
            "batch_size": 16,
        },
    )


def test_training_reaches_the_accuracy_and_records_it(trained):
    recorded = json.loads(trained["metadata"].read_text())
    assert recorded["held_out_accuracy"] >= 0.95
    assert recorded["n_held_out"] > 400
    # Independent check of the recorded number: the saved weights on the held-out split.
    model, info = build_model(torch_spec(trained["weights"]))
    x, y = digits_tensors(32)
    _, test_idx = split_indices(y.numpy(), 0.25, 0)
    with torch.inference_mode():
        accuracy = float((model(x[test_idx]).argmax(1) == y[test_idx]).float().mean())
    assert accuracy == pytest.approx(recorded["held_out_accuracy"], abs=1e-6)
    assert info["sha256"] == recorded["weights_sha256"]


def test_torch_and_onnxruntime_give_the_same_activations(trained, tmp_path):
    stimuli = materialise_stimuli({"source": "digits", "size": 64, "n": 24}, tmp_path / "digits")
    opts = ExtractionOptions.from_config(
        {"n_replicates": 2, "progress": False, "jitter": {"translate": 2, "rotate": 5}}
    )
    a = extract_activations(torch_spec(trained["weights"]), stimuli, tmp_path / "t.h5", opts)
    b = extract_activations(
        onnx_spec(trained["onnx"]), stimuli, tmp_path / "o.h5", opts, cache_dir=tmp_path / "cache"
    )
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        for layer in LAYERS:
            ta, tb = fa[f"digits_cnn/layers/{layer}"][()], fb[f"digits_cnn_onnx/layers/{layer}"][()]
            assert ta.shape == tb.shape
            assert np.abs(ta - tb).max() <= 1e-4, layer
        np.testing.assert_array_equal(fa["digits_cnn/jitter"][()], fb["digits_cnn_onnx/jitter"][()])
        runtime = json.loads(fb["digits_cnn_onnx"].attrs["runtime"])
        assert runtime["backend"] == "onnxruntime"
        assert "CPUExecutionProvider" in runtime["providers"]
        weights = json.loads(fb["digits_cnn_onnx"].attrs["weights"])
        assert weights["kind"] == "onnx" and len(weights["sha256"]) == 64
    assert list((tmp_path / "cache").glob("*.instrumented.onnx"))
    # The network learned: the logits (fc2) of unjittered digits predict their labels.
    with h5py.File(a, "r") as fa:
        logits = fa["digits_cnn/layers/fc2"][:, 0, :]
    labels = np.array([int(v) for v in stimuli.labels["digit"]])
    assert (logits.argmax(1) == labels).mean() >= 0.9
