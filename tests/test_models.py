"""The model registry: sources, close-name errors, python entries, CORnet-S, layers: auto,
`actpipe layers`, devices/autocast, and the early check of every model entry."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from actpipe.extraction import LayerError
from actpipe.extraction.backends import open_backend
from actpipe.models import ModelError, ModelSpec, build_model, check_model
from actpipe.models.layers import auto_layer_names


def spec(entry="m", **block) -> ModelSpec:
    block.setdefault("layers", "auto")
    block.setdefault("preprocess", {"preset": "imagenet", "size": 32, "resize": 32})
    return ModelSpec.from_config(entry, block)


@pytest.mark.parametrize(
    "source, arch, close",
    [
        ("timm", "resnet5O", "resnet50"),
        ("torchvision", "resnet51", "resnet50"),
        ("actpipe", "cornet", "cornet_s"),
        ("timm", "vit_base_patch16_clip_224.openia", "vit_base_patch16_clip_224.openai"),
    ],
)
def test_unknown_architecture_names_the_entry_and_close_names(source, arch, close):
    with pytest.raises(ModelError, match=rf"model 'bad'.*{arch}.*{close}"):
        check_model(spec("bad", source=source, name=arch))


def test_unknown_source_is_rejected():
    with pytest.raises(ModelError, match="model 'm'.*unknown source 'keras'"):
        spec(source="keras", name="x")


USER_MODULE = """
import torch

def build(width=4):
    return torch.nn.Sequential(torch.nn.Conv2d(3, width, 3), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())

def not_a_model():
    return 42
"""


def test_python_source_module_and_file(tmp_path, monkeypatch):
    (tmp_path / "user_nets.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    by_module = spec(
        source="python", name="user_nets:build", kwargs={"width": 6}, layers=["0", "3"], seed=4
    )
    by_file = spec(
        source="python",
        name=f"{tmp_path}/user_nets.py:build",
        kwargs={"width": 6},
        layers=["0", "3"],
        seed=4,
    )
    a, info_a = build_model(by_module)
    b, info_b = build_model(by_file)
    assert info_a["state_dict_sha256"] == info_b["state_dict_sha256"]  # seeded construction
    assert check_model(by_module)["layers"] == ["0", "3"]
    assert check_model(spec(source="python", name="user_nets:build"))["layers"] == [
        "0",
        "1",
        "2",
        "3",
    ]


def test_python_source_errors(tmp_path, monkeypatch):
    (tmp_path / "user_nets.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModelError, match="model 'm'.*cannot import 'no_such_mod:build'"):
        check_model(spec(source="python", name="no_such_mod:build"))
    with pytest.raises(ModelError, match="model 'm'.*returned int, not a torch.nn.Module"):
        check_model(spec(source="python", name="user_nets:not_a_model"))
    with pytest.raises(ModelError, match="model 'm'.*no function 'biuld'.*build"):
        check_model(spec(source="python", name="user_nets:biuld"))
    with pytest.raises(ModelError, match="model 'm'.*'package.module:function'"):
        check_model(spec(source="python", name="user_nets"))


def test_cornet_s_published_layout_and_checkpoint(tmp_path):
    model, _ = build_model(spec(source="actpipe", name="cornet_s", seed=2))
    keys = set(model.state_dict())
    for key in (
        "V1.conv1.weight",
        "V2.conv_input.weight",
        "V2.skip.weight",
        "V2.norm1_1.weight",
        "V4.norm3_3.running_mean",
        "IT.conv3.weight",
        "decoder.linear.weight",
    ):
        assert key in keys
    # A published-style checkpoint: DataParallel prefix, wrapped in a dict with 'state_dict'.
    torch.save(
        {
            "epoch": 43,
            "arch": "CORnet_S",
            "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()},
        },
        tmp_path / "cornet_s.pth",
    )
    loaded, info = build_model(
        spec(source="actpipe", name="cornet_s", weights=str(tmp_path / "cornet_s.pth"))
    )
    assert (
        info["state_dict_sha256"]
        == build_model(spec(source="actpipe", name="cornet_s", seed=2))[1]["state_dict_sha256"]
    )
    backend = open_backend(
        spec(
            source="actpipe",
            name="cornet_s",
            layers=["V1", "V2", "V4", "IT", "decoder.avgpool"],
            reduce="flatten",
            preprocess={"size": 64, "resize": 64},
        ),
        device_name="cpu",
    )
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        features = backend.capture.run(x)
    assert backend.capture.shapes == {
        "V1": (64, 16, 16),
        "V2": (128, 8, 8),
        "V4": (256, 4, 4),
        "IT": (512, 2, 2),
        "decoder.avgpool": (512, 1, 1),
    }
    model = backend.capture.model
    backend.close()
    with torch.inference_mode():
        it = model.IT(model.V4(model.V2(model.V1(x))))
    torch.testing.assert_close(features["IT"], it.flatten(1))


@pytest.mark.parametrize(
    "block, expected",
    [
        (
            {"source": "torchvision", "name": "resnet18"},
            ["layer1", "layer2", "layer3", "layer4", "avgpool"],
        ),
        ({"source": "timm", "name": "resnet18"}, ["act1", "layer1", "layer2", "layer3", "layer4"]),
        (
            {"source": "timm", "name": "convnext_atto"},
            ["stages.0", "stages.1", "stages.2", "stages.3"],
        ),
        (
            {"source": "torchvision", "name": "vgg11"},
            [
                "features.2",
                "features.5",
                "features.10",
                "features.15",
                "features.20",
                "classifier.1",
                "classifier.4",
                "classifier.6",
            ],
        ),
        ({"source": "actpipe", "name": "cornet_s"}, ["V1", "V2", "V4", "IT", "decoder.avgpool"]),
        (
            {"source": "actpipe", "name": "digits_cnn"},
            ["features.block1", "features.block2", "features.block3", "pool", "fc1", "fc2"],
        ),
    ],
)
def test_layers_auto_family_defaults(block, expected):
    assert check_model(spec(**block))["layers"] == expected


def test_layers_auto_of_a_timm_vit_is_every_block():
    summary = check_model(spec(source="timm", name="vit_tiny_patch16_224", kwargs={"img_size": 32}))
    assert summary["layers"] == [f"blocks.{i}" for i in range(12)]


def test_unknown_layer_is_found_by_the_early_check():
    with pytest.raises(LayerError, match=r"model 'm': no layer 'layer5'.*layer"):
        check_model(spec(source="torchvision", name="resnet18", layers=["layer1", "layer5"]))


def test_layers_cli_table_auto_and_config_lookup(tmp_path, capsys, monkeypatch):
    from actpipe.cli import main

    assert main(["layers", "torchvision:resnet18", "--size", "32"]) == 0
    out = capsys.readouterr().out
    assert "layer3.1.conv2" in out and "256x2x2" in out
    assert main(["layers", "torchvision:resnet18", "--auto", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == auto_layer_names(
        build_model(spec(source="torchvision", name="resnet18"))[0]
    )
    config = tmp_path / "c.yaml"
    config.write_text(
        "models:\n  tiny:\n    source: timm\n    name: vit_tiny_patch16_224\n"
        "    kwargs: {img_size: 32}\n    layers: [blocks.0]\n"
    )
    assert main(["layers", "tiny", "--config", str(config), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    shapes = {e["name"]: e["shape"] for e in listing["layers"]}
    assert shapes["blocks.0"] == [5, 192]  # 4 patches + class token at 32 px
    assert main(["layers", "nonsense"]) == 1


def test_device_override_and_autocast_recorded_as_not_applied_on_cpu():
    backend = open_backend(
        spec(
            source="torchvision", name="resnet18", layers=["layer1"], device="cpu", autocast="bf16"
        ),
        device_name="auto",
    )
    assert backend.device.type == "cpu"
    assert backend.runtime["autocast"] == "none"
    assert backend.runtime["autocast_requested"] == "bf16"
    backend.close()
    with pytest.raises(ModelError, match="autocast must be one of"):
        spec(source="torchvision", name="resnet18", autocast="fp8")


def test_check_models_reports_every_bad_entry(tmp_path):
    from actpipe.models import check_models

    models = {
        "good": {"source": "torchvision", "name": "resnet18", "layers": ["layer1"]},
        "typo": {"source": "torchvision", "name": "resnet188", "layers": ["layer1"]},
        "nofile": {"source": "onnx", "path": str(tmp_path / "x.onnx"), "layers": ["a"]},
    }
    with pytest.raises(
        ValueError,
        match=r"(?s)2 model entries.*model 'typo'.*resnet18.*"
        r"model 'nofile'.*does not exist",
    ):
        check_models(models, tmp_path / "checked.json")
    assert not (tmp_path / "checked.json").exists()
    check_models({"good": models["good"]}, tmp_path / "checked.json")
    assert json.loads((tmp_path / "checked.json").read_text())["good"]["layers"] == ["layer1"]


class Inplace(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.conv(x))


def test_captured_output_is_not_changed_by_a_later_inplace_op():
    from actpipe.extraction import TorchCapture
    from actpipe.models import LayerSpec

    model = Inplace().eval()
    capture = TorchCapture(model, [LayerSpec("conv", "flatten")], "inplace")
    capture.early_stop = False
    x = torch.randn(2, 3, 8, 8)
    with torch.inference_mode():
        features = capture.run(x)
        capture.remove()
        expected = model.conv(x).flatten(1)
    assert (expected < 0).any()
    torch.testing.assert_close(features["conv"], expected)


@pytest.mark.workflow
def test_workflow_stops_at_check_models_before_any_extraction(tmp_path):
    from tests.helpers.workflow import run_snakemake, tiny_config, write_config

    config = tiny_config()
    config["models"]["typo"] = {**config["models"]["resnet18"], "name": "resnet181"}
    write_config(tmp_path, config)
    proc = run_snakemake(tmp_path, "--cores", "2", check=False)
    assert proc.returncode != 0
    log = (tmp_path / "logs/check_models.log").read_text()
    assert "model 'typo'" in log and "resnet18" in log
    assert not list((tmp_path / "results").glob("activations/**/*.h5"))
