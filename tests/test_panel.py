"""The model panel of config/panels/seed_panel.yaml: every model builds (random weights, CPU,
small inputs), every configured layer exists and gives activations of the recorded shape."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import torch
import yaml

from actpipe.extraction.backends import open_backend
from actpipe.extraction.capture import first_tensor
from actpipe.models import ModelSpec, build_model, check_model
from actpipe.probes import is_probe

REPO = Path(__file__).resolve().parents[1]
PANEL = yaml.safe_load((REPO / "config/panels/seed_panel.yaml").read_text())["models"]
EXPECTED = {
    "ResNet50",
    "ResNeXt-101-WSL",
    "ConvNeXt-Large",
    "CORNet-S",
    "VGG19",
    "ViT-B-16",
    "ViT-B-32",
    "DeiT-Base",
    "ResNet50-CLIP",
    "ConvNeXt-Large-CLIP",
    "ViT-B-16-CLIP",
    "ViT-B-32-CLIP",
    "ViT-B-16-LAION-CLIP",
    "SLIP-ViT-Small",
}


def small_block(block: dict) -> dict:
    """The panel block with random weights and a small input (timm's img_size where needed)."""
    block = {**block, "weights": "random", "batch_size": 4}
    size = 64 if "patch32" in block["name"] else 32
    if block["source"] == "timm" and any(k in block["name"] for k in ("vit", "deit", "clip")):
        if not block["name"].startswith("convnext"):
            block["kwargs"] = {**block.get("kwargs", {}), "img_size": size}
    pre = block.get("preprocess", "auto")
    pre = {"preset": pre} if isinstance(pre, str) else dict(pre)
    block["preprocess"] = {**pre, "size": size, "resize": size}
    return block


def expected_features(x: torch.Tensor, how: str) -> torch.Tensor:
    """The reduction, written out independently of actpipe.extraction.capture."""
    if how == "flatten" or x.dim() == 2:
        return x.reshape(len(x), -1)
    if x.dim() == 3:
        return x[:, 0] if how == "cls" else (x.mean(1) if how == "mean" else x.amax(1))
    return x.mean(dim=(2, 3)) if how == "mean" else x.amax(dim=(2, 3))


def test_the_panel_holds_every_model_and_validates():
    from snakemake.utils import validate

    assert set(PANEL) == EXPECTED
    validate(
        {"stimuli": {"g": {"source": "gratings"}}, "models": PANEL},
        str(REPO / "workflow/schemas/config.schema.yaml"),
    )
    for name, block in PANEL.items():
        spec = ModelSpec.from_config(name, block)
        assert spec.preprocess.size and spec.layers, name


@pytest.mark.parametrize("name", sorted(PANEL))
def test_panel_model_builds_and_gives_each_layer(name):
    spec = ModelSpec.from_config(name, small_block(PANEL[name]))
    assert check_model(spec)["layers"] == spec.layer_names  # the early check, meta device
    backend = open_backend(spec, device_name="cpu")
    capture = backend.capture
    size = spec.preprocess.size
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    try:
        with torch.inference_mode():
            features = capture.run(x)
        model = capture.model
        capture.remove()
        modules = dict(model.named_modules())
        seen: dict[str, torch.Tensor] = {}
        # Transformer probes and metrics are tested in test_transformer_probes.py; here they
        # must only run: the class token's attention sums to 1 over the keys.
        plain = [layer for layer in spec.layers if not is_probe(layer.stored_name)]
        for layer in spec.layers:
            if is_probe(layer.stored_name):
                rows = features[layer.name].reshape(2, capture.feature_shapes[layer.name][0], -1)
                torch.testing.assert_close(rows.sum(-1), torch.ones(rows.shape[:2]))
        handles = [
            modules[layer.name].register_forward_hook(
                lambda _m, _i, out, n=layer.name: seen.setdefault(n, first_tensor(out).clone())
            )
            for layer in plain
        ]
        with torch.inference_mode():
            model(x)
        for handle in handles:
            handle.remove()
        for layer in plain:
            out = seen[layer.name]
            assert capture.shapes[layer.name] == tuple(out.shape[1:]), layer.name
            reference = expected_features(out, layer.reduce)
            assert features[layer.name].shape == reference.shape == (2, reference.shape[1])
            torch.testing.assert_close(features[layer.name], reference, atol=1e-4, rtol=1e-4)
    finally:
        del backend, capture
        gc.collect()


def test_slip_checkpoint_loads_through_the_prefix(tmp_path):
    block = small_block(PANEL["SLIP-ViT-Small"])
    model, _ = build_model(ModelSpec.from_config("SLIP-ViT-Small", block))
    state = {f"module.visual.{k}": v for k, v in model.state_dict().items()}
    state["module.logit_scale"] = torch.ones(())
    state["module.image_projection"] = torch.zeros(384, 512)
    torch.save({"epoch": 99, "state_dict": state}, tmp_path / "slip_small.pt")
    loaded = ModelSpec.from_config(
        "SLIP-ViT-Small", {**block, "weights": str(tmp_path / "slip_small.pt")}
    )
    assert check_model(loaded)["weights"].endswith("slip_small.pt")
    reloaded, info = build_model(loaded)
    assert info["prefix"] == "visual." and not info["missing_keys"]
    for key, value in model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value)
