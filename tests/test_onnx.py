"""ONNX models: instrumentation, onnxruntime against torch, caching, and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from actpipe.extraction import OnnxCapture
from actpipe.models import ModelError, ModelSpec, check_model
from actpipe.models.onnx import (
    auto_tensor_names,
    instrument,
    load_graph,
    tensor_names,
)


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(32, 5)

    def forward(self, x):
        return self.fc(self.pool(self.act(self.conv(x))).flatten(1))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A plain export (no tensor naming by actpipe): layers are the exporter's tensor names."""
    torch.manual_seed(0)
    model = Small().eval()
    path = tmp_path_factory.mktemp("onnx") / "small.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, 16, 16),),
            str(path),
            input_names=["x"],
            dynamic_axes={"x": {0: "n"}},
            dynamo=False,
            opset_version=17,
        )
    return model, path


def spec_for(path, layers, **extra) -> ModelSpec:
    block = {
        "source": "onnx",
        "path": str(path),
        "layers": layers,
        "preprocess": {"preset": "none", "size": 16, "resize": 16},
        "batch_size": 4,
    }
    block.update(extra)
    return ModelSpec.from_config("small_onnx", block)


def test_instrumented_tensors_equal_torch_module_outputs(exported, tmp_path):
    model, path = exported
    graph = load_graph(path, "test")
    relu = next(n.output[0] for n in graph.graph.node if n.op_type == "Relu")
    gemm = next(n.output[0] for n in graph.graph.node if n.op_type == "Gemm")
    spec = spec_for(path, [relu, gemm])
    capture = OnnxCapture(spec, tmp_path)
    x = torch.randn(3, 3, 16, 16)
    features = capture.run(x)
    seen = {}
    model.act.register_forward_hook(lambda m, i, o: seen.setdefault("act", o))
    with torch.no_grad():
        logits = model(x)
    np.testing.assert_allclose(features[relu].numpy(), seen["act"].flatten(1).numpy(), atol=1e-5)
    np.testing.assert_allclose(features[gemm].numpy(), logits.numpy(), atol=1e-5)
    assert capture.shapes[relu] == (8, 16, 16)
    # The copy is cached and reused; the source file keeps its single output.
    first = capture.path
    mtime = first.stat().st_mtime_ns
    assert instrument(spec, [relu, gemm], tmp_path) == first
    assert first.stat().st_mtime_ns == mtime
    assert len(load_graph(path, "t").graph.output) == 1


def test_auto_layers_are_the_conv_and_gemm_outputs(exported, tmp_path):
    _, path = exported
    graph = load_graph(path, "t")
    auto = auto_tensor_names(graph)
    assert [n.op_type for n in graph.graph.node if n.output[0] in auto] == ["Conv", "Gemm"]
    summary = check_model(spec_for(path, "auto"))
    assert summary["layers"] == auto


def test_unknown_tensor_name_names_the_model_and_close_names(exported):
    _, path = exported
    name = tensor_names(load_graph(path, "t"))[0]
    with pytest.raises(ModelError, match=rf"model 'small_onnx'.*no tensor '{name}x'.*{name}"):
        check_model(spec_for(path, [name + "x"]))


def test_file_that_does_not_parse_and_missing_file(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07not really a protobuf" * 10)
    with pytest.raises(ModelError, match="model 'small_onnx'.*broken.onnx.*not a valid ONNX"):
        check_model(spec_for(bad, ["x"]))
    with pytest.raises(ModelError, match="model 'small_onnx'.*does not exist"):
        check_model(spec_for(tmp_path / "missing.onnx", ["x"]))


def test_fixed_input_size_must_match_preprocessing(tmp_path):
    path = tmp_path / "fixed.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Small().eval(),
            (torch.zeros(1, 3, 16, 16),),
            str(path),
            input_names=["x"],
            dynamic_axes={"x": {0: "n"}},
            dynamo=False,
        )
    spec = ModelSpec.from_config(
        "fixed",
        {
            "source": "onnx",
            "path": str(path),
            "layers": "auto",
            "preprocess": {"size": 32, "resize": 32},
        },
    )
    with pytest.raises(ModelError, match=r"model 'fixed'.*16x16.*32x32"):
        check_model(spec)


def test_layers_cli_lists_tensors_with_shapes(exported, capsys):
    from actpipe.cli import main

    _, path = exported
    assert main(["layers", str(path), "--size", "16"]) == 0
    out = capsys.readouterr().out
    assert "Conv" in out and "8x16x16" in out and "*" in out
