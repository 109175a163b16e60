"""Transformer probes and attention metrics against independent computations.

Patterns against timm's own attention weights (``AttentionExtract`` on the model with fused
attention off); the residual stream and head outputs against the model's own modules called
on the captured tensors; every metric against numpy written from its definition, on the
patterns and values of the same run and on hand-made maps; every supported family with
random weights; clear errors for everything else.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from actpipe.errors import LayerError, ModelError
from actpipe.extraction import attention_metrics as am
from actpipe.extraction.torch_capture import TorchCapture
from actpipe.models import ModelSpec, check_model
from actpipe.models.spec import LayerSpec, MetricSpec
from actpipe.probes import METRICS, parse_probe
from tests.helpers.transformers import (
    FAMILIES,
    ref_density,
    ref_metrics,
    set_fused,
    small_torchvision_vit,
    timm_model,
)

ALL_METRICS = MetricSpec(tuple(METRICS))
SITES = ("resid_pre", "resid_mid", "resid_post") + tuple(
    f"attn.{s}" for s in ("pattern", "q", "k", "v", "z", "head_out")
)


def inputs(size: int, n: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def capture(
    model: torch.nn.Module,
    layers: list[LayerSpec],
    x: torch.Tensor,
    metrics: MetricSpec | None = None,
) -> tuple[dict[str, np.ndarray], TorchCapture]:
    """Every output of one forward pass, ``(batch, *feature_shape)`` as numpy."""
    cap = TorchCapture(model, layers, "m", metrics)
    try:
        with torch.inference_mode():
            out = cap.run(x)
        return {
            name: t.numpy().reshape(len(x), *cap.feature_shapes.get(name, (-1,)))
            for name, t in out.items()
        }, cap
    finally:
        cap.remove()


def all_probes(blocks: range, reduce: str = "flatten") -> list[LayerSpec]:
    return [LayerSpec(f"blocks.{i}.{site}", reduce) for i in blocks for site in SITES]


def scale_of(a: np.ndarray) -> float:
    """The size of the terms summed when checking a product (for an absolute tolerance)."""
    return max(1.0, float(np.abs(a).max()))


def unflatten(values: np.ndarray, tokens: int) -> np.ndarray:
    """(batch, heads, tokens * dim) -> (batch, heads, tokens, dim)."""
    b, h, f = values.shape
    return values.reshape(b, h, tokens, f // tokens)


# --------------------------------------------------------------------------- patterns


@pytest.mark.parametrize("fused", [True, False])
def test_pattern_equals_timm_attention_weights(fused: bool) -> None:
    from timm.utils import AttentionExtract

    model = timm_model("vit", fused=fused)
    x = inputs(48)
    depth = len(model.blocks)
    got, _ = capture(model, [LayerSpec(f"blocks.{i}.attn.pattern") for i in range(depth)], x)
    reference = copy.deepcopy(model)
    set_fused(reference, False)
    extract = AttentionExtract(reference, method="fx")
    with torch.inference_mode():
        maps = extract(x)
    assert len(maps) == depth
    for i in range(depth):
        expected = maps[f"blocks.{i}.attn.softmax"].numpy()
        pattern = got[f"blocks.{i}.attn.pattern"].reshape(expected.shape)
        np.testing.assert_allclose(pattern, expected, atol=1e-5, rtol=0)
        np.testing.assert_allclose(pattern.sum(-1), 1.0, atol=1e-5)


def test_pattern_reductions_and_cls_row() -> None:
    model = timm_model("vit")
    x = inputs(48)
    full, _ = capture(model, [LayerSpec("blocks.1.attn.pattern", "flatten")], x)
    n = 10  # 9 patches + class token
    pattern = full["blocks.1.attn.pattern"].reshape(len(x), 3, n, n)
    for reduce, expected in [
        ("cls_row", pattern[:, :, 0]),
        ("cls", pattern[:, :, 0]),
        ("mean", pattern.mean(2)),
        ("max", pattern.max(2)),
    ]:
        got, cap = capture(model, [LayerSpec("blocks.1.attn.pattern", reduce)], x)
        np.testing.assert_allclose(got["blocks.1.attn.pattern"], expected, atol=1e-6)
        assert cap.applied["blocks.1.attn.pattern"] == ("cls_row" if reduce == "cls" else reduce)
        assert cap.shapes["blocks.1.attn.pattern"] == (3, n, n)


# --------------------------------------------------------------------------- residual stream


def _timm_branches(model, i, resid_pre, resid_mid):
    block = model.blocks[i]
    attn_out = block.attn(block.norm1(resid_pre))
    return attn_out, block.ls1(attn_out), block.ls2(block.mlp(block.norm2(resid_mid)))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_residual_identities_and_head_outputs_timm(family: str) -> None:
    model = timm_model(family)
    x = inputs(FAMILIES[family]["size"])
    depth = len(model.blocks)
    got, _ = capture(model, all_probes(range(depth)), x)
    tokens = got["blocks.0.resid_pre"].shape[1] // model.embed_dim
    t = {k: torch.from_numpy(v) for k, v in got.items()}
    with torch.inference_mode():
        for i in range(depth):
            pre = t[f"blocks.{i}.resid_pre"].reshape(len(x), tokens, -1)
            mid = t[f"blocks.{i}.resid_mid"].reshape(len(x), tokens, -1)
            post = t[f"blocks.{i}.resid_post"].reshape(len(x), tokens, -1)
            attn_out, attn_branch, mlp_branch = _timm_branches(model, i, pre, mid)
            torch.testing.assert_close(mid, pre + attn_branch, atol=1e-5, rtol=0)
            torch.testing.assert_close(post, mid + mlp_branch, atol=1e-5, rtol=0)
            if i + 1 < depth:
                assert torch.equal(post, t[f"blocks.{i + 1}.resid_pre"].reshape(post.shape))
            head_out = unflatten(got[f"blocks.{i}.attn.head_out"], tokens)
            bias = model.blocks[i].attn.proj.bias.detach().numpy()
            np.testing.assert_allclose(head_out.sum(1) + bias, attn_out.numpy(), atol=1e-5, rtol=0)
            # z is the attention-weighted mix of the values; head_out its projection.
            pattern = got[f"blocks.{i}.attn.pattern"].reshape(len(x), -1, tokens, tokens)
            v = unflatten(got[f"blocks.{i}.attn.v"], tokens)
            z = unflatten(got[f"blocks.{i}.attn.z"], tokens)
            np.testing.assert_allclose(z, pattern @ v, atol=1e-5 * scale_of(v), rtol=1e-5)
            w = model.blocks[i].attn.proj.weight.detach().numpy()
            d = z.shape[-1]
            for h in range(z.shape[1]):
                np.testing.assert_allclose(
                    head_out[:, h],
                    z[:, h] @ w[:, h * d : (h + 1) * d].T,
                    atol=1e-5 * scale_of(z),
                    rtol=1e-5,
                )
            q = unflatten(got[f"blocks.{i}.attn.q"], tokens)
            k = unflatten(got[f"blocks.{i}.attn.k"], tokens)
            logits = (q * model.blocks[i].attn.scale) @ np.swapaxes(k, -1, -2)
            softmax = np.exp(logits - logits.max(-1, keepdims=True))
            softmax /= softmax.sum(-1, keepdims=True)
            np.testing.assert_allclose(pattern, softmax, atol=1e-5, rtol=1e-5)


def test_residual_identities_and_head_outputs_torchvision() -> None:
    model = small_torchvision_vit()
    x = inputs(32)
    got, _ = capture(model, all_probes(range(2)), x)
    tokens = 1 + (32 // 8) ** 2
    t = {k: torch.from_numpy(v) for k, v in got.items()}
    with torch.inference_mode():
        for i in range(2):
            block = model.encoder.layers[i]
            pre = t[f"blocks.{i}.resid_pre"].reshape(len(x), tokens, -1)
            mid = t[f"blocks.{i}.resid_mid"].reshape(len(x), tokens, -1)
            post = t[f"blocks.{i}.resid_post"].reshape(len(x), tokens, -1)
            y = block.ln_1(pre)
            attn_out, weights = block.self_attention(
                y, y, y, need_weights=True, average_attn_weights=False
            )
            torch.testing.assert_close(mid, pre + attn_out, atol=1e-5, rtol=0)
            torch.testing.assert_close(post, mid + block.mlp(block.ln_2(mid)), atol=1e-5, rtol=0)
            pattern = got[f"blocks.{i}.attn.pattern"].reshape(weights.shape)
            np.testing.assert_allclose(pattern, weights.numpy(), atol=1e-5, rtol=0)
            head_out = unflatten(got[f"blocks.{i}.attn.head_out"], tokens)
            bias = block.self_attention.out_proj.bias.detach().numpy()
            np.testing.assert_allclose(head_out.sum(1) + bias, attn_out.numpy(), atol=1e-5)
            v = unflatten(got[f"blocks.{i}.attn.v"], tokens)
            z = unflatten(got[f"blocks.{i}.attn.z"], tokens)
            np.testing.assert_allclose(z, pattern @ v, atol=1e-5 * scale_of(v), rtol=1e-5)


def test_model_output_unchanged_and_one_block_at_a_time() -> None:
    model = timm_model("vit")
    x = inputs(48)
    with torch.inference_mode():
        expected = model(x)
    cap = TorchCapture(model, [LayerSpec("blocks.2.attn.z@h1")], "m", ALL_METRICS)
    cap.early_stop = False
    held: list[int] = []

    def count(_module, _args):
        held.append(sum(len(b.scratch) for b in cap.probes.blocks.values()))

    handles = [block.register_forward_pre_hook(count) for block in model.blocks]
    handles.append(model.norm.register_forward_pre_hook(count))
    try:
        with torch.inference_mode():
            model_out = {}

            def keep(_m, _a, out):
                model_out["y"] = out

            handles.append(model.register_forward_hook(keep))
            cap.run(x)
    finally:
        for h in handles:
            h.remove()
        cap.remove()
    assert torch.equal(model_out["y"], expected)
    # Between blocks nothing of any block's attention is held.
    assert held == [0] * (len(model.blocks) + 1)


# --------------------------------------------------------------------------- metrics


def _check_metrics(got, prefix, grid, patch, proj_weights, tokens):
    for i, weight in enumerate(proj_weights):
        b = got[f"blocks.{i}.attn.pattern"].shape[0]
        pattern = got[f"blocks.{i}.attn.pattern"].reshape(b, -1, tokens, tokens)
        v = unflatten(got[f"blocks.{i}.attn.v"], tokens)
        z = unflatten(got[f"blocks.{i}.attn.z"], tokens)
        expected = ref_metrics(pattern, v, z, weight, prefix, grid, patch)
        for metric, value in expected.items():
            np.testing.assert_allclose(
                got[f"blocks.{i}.attn.{metric}"], value, rtol=1e-4, atol=1e-5, err_msg=metric
            )


@pytest.mark.parametrize("family", ["vit", "deit_distilled", "dinov2_registers_layerscale"])
def test_metrics_equal_numpy_on_the_same_run_timm(family: str) -> None:
    model = timm_model(family)
    size = FAMILIES[family]["size"]
    depth = len(model.blocks)
    layers = [
        LayerSpec(f"blocks.{i}.attn.{s}") for i in range(depth) for s in ("pattern", "v", "z")
    ]
    got, cap = capture(model, layers, inputs(size), ALL_METRICS)
    patch = tuple(model.patch_embed.patch_size)
    grid = (size // patch[0], size // patch[1])
    prefix = model.num_prefix_tokens
    assert cap.describe()["prefix_tokens"] == prefix and cap.describe()["grid"] == list(grid)
    weights = [b.attn.proj.weight.detach().numpy() for b in model.blocks]
    _check_metrics(got, prefix, grid, patch, weights, prefix + grid[0] * grid[1])


def test_metrics_equal_numpy_on_the_same_run_torchvision() -> None:
    model = small_torchvision_vit()
    layers = [LayerSpec(f"blocks.{i}.attn.{s}") for i in range(2) for s in ("pattern", "v", "z")]
    got, _ = capture(model, layers, inputs(32), ALL_METRICS)
    weights = [b.self_attention.out_proj.weight.detach().numpy() for b in model.encoder.layers]
    _check_metrics(got, 1, (4, 4), (8, 8), weights, 17)


def test_metrics_only_blocks_subset() -> None:
    model = timm_model("vit")
    cap = TorchCapture(model, [], "m", MetricSpec(("density", "sink_share"), (1,)))
    with torch.inference_mode():
        out = cap.run(inputs(48))
    cap.remove()
    assert list(out) == ["blocks.1.attn.density", "blocks.1.attn.sink_share"]
    assert all(t.shape == (3, 3) for t in out.values())


def test_metrics_on_hand_made_maps() -> None:
    n = 7
    uniform = torch.full((1, 1, n, n), 1.0 / n)
    one_hot = torch.eye(n)[None, None]
    np.testing.assert_allclose(am.attention_entropy(uniform), np.log(n), rtol=1e-6)
    np.testing.assert_allclose(am.attention_entropy_norm(uniform), 1.0, rtol=1e-6)
    assert float(am.attention_entropy(one_hot)) == 0.0
    assert float(am.attention_entropy_norm(one_hot)) == 0.0
    np.testing.assert_allclose(am.density(uniform), np.ceil(0.9 * n) / n, rtol=1e-6)
    np.testing.assert_allclose(am.density(one_hot), 1.0 / n, rtol=1e-6)
    np.testing.assert_allclose(am.sink_share(uniform, 2), 2.0 / n, rtol=1e-6)
    assert float(am.sink_share(uniform, 0)) == 0.0

    # Density against the top-m definition in float64, on rows far from the 90% boundary.
    rows = torch.randn(400, 30, generator=torch.Generator().manual_seed(3)).mul(2).softmax(-1)
    got = am.density(rows[:, None, None, :]).reshape(-1).numpy()
    top = np.sort(rows.double().numpy(), axis=-1)[:, ::-1].cumsum(-1)
    m = (top < 0.9 * top[:, -1:]).sum(-1) + 1
    clear = np.abs(top - 0.9 * top[:, -1:]).min(-1) > 1e-6
    assert clear.sum() > 390
    np.testing.assert_allclose(got[clear], m[clear] / 30, rtol=1e-6)

    # A 3 x 4 patch grid of 16 x 8 pixel patches behind one class token.
    grid, patch, prefix = (3, 4), (16, 8), 1
    tokens = prefix + 12
    dist = am.patch_distances(grid, patch, prefix)
    diagonal = torch.eye(tokens)[None, None]
    assert float(am.attention_distance(diagonal, prefix, dist)) == 0.0
    # Every patch attends to the patch on its right (the last column to itself).
    right = torch.zeros(1, 1, tokens, tokens)
    right[..., 0, 0] = 1
    for r in range(3):
        for c in range(4):
            j = prefix + r * 4 + c
            right[..., j, j + 1 if c < 3 else j] = 1
    np.testing.assert_allclose(am.attention_distance(right, prefix, dist), 8 * 9 / 12, rtol=1e-6)
    # Half the mass on the class token does not shrink the distance (renormalised) ...
    half = right.clone()
    half[..., prefix:, :] *= 0.5
    half[..., prefix:, 0] += 0.5
    np.testing.assert_allclose(am.attention_distance(half, prefix, dist), 8 * 9 / 12, rtol=1e-6)
    # ... and is what sink_share reports (the class row attends to itself).
    np.testing.assert_allclose(am.sink_share(half, prefix), (1 + 12 * 0.5) / 13, rtol=1e-6)
    # Vertical neighbours are 16 pixels apart, diagonal ones sqrt(16^2 + 8^2).
    assert float(dist[1, 5]) == 16.0 and float(dist[0, 5]) == 0.0
    np.testing.assert_allclose(float(dist[1, 6]), np.hypot(16, 8), rtol=1e-6)
    # All pattern metrics at once equal the single-metric functions.
    together = am.pattern_metrics(half, list(METRICS)[:5], prefix, dist)
    assert list(together) == list(METRICS)[:5]
    torch.testing.assert_close(together["density"], am.density(half))
    torch.testing.assert_close(
        together["attention_distance"], am.attention_distance(half, prefix, dist)
    )
    torch.testing.assert_close(together["attention_entropy"], am.attention_entropy(half))

    # Head-output norm: ||z W_h^T|| against an explicit projection.
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(2, 3, 5, 4, generator=gen)
    weight = torch.randn(10, 12, generator=gen)
    expected = torch.stack(
        [(z[:, h] @ weight[:, 4 * h : 4 * h + 4].T).norm(dim=-1).mean(-1) for h in range(3)], 1
    )
    got = am.head_out_norm(z, am.output_gram(weight, 3))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    values = torch.randn(2, 3, 5, 4, generator=gen)
    torch.testing.assert_close(am.value_norm(values), values.norm(dim=-1).mean(-1))


# --------------------------------------------------------------------------- reductions, heads


def test_per_head_reductions_match_full_tensors() -> None:
    model = timm_model("vit")
    x = inputs(48)
    full, _ = capture(model, [LayerSpec("blocks.0.attn.z"), LayerSpec("blocks.0.attn.head_out")], x)
    z = unflatten(full["blocks.0.attn.z"], 10)
    head_out = unflatten(full["blocks.0.attn.head_out"], 10)
    for reduce, pick in [
        ("cls", lambda a: a[:, :, 0]),
        ("mean", lambda a: a.mean(2)),
        ("max", lambda a: a.max(2)),
    ]:
        got, cap = capture(
            model,
            [LayerSpec("blocks.0.attn.z", reduce), LayerSpec("blocks.0.attn.head_out", reduce)],
            x,
        )
        np.testing.assert_allclose(got["blocks.0.attn.z"], pick(z), atol=1e-5)
        np.testing.assert_allclose(got["blocks.0.attn.head_out"], pick(head_out), atol=1e-5)
        assert cap.feature_shapes["blocks.0.attn.z"] == (3, 64)
        assert cap.feature_shapes["blocks.0.attn.head_out"] == (3, 192)


def test_plain_layers_and_probes_mix_in_one_pass() -> None:
    model = timm_model("vit")
    x = inputs(48)
    got, cap = capture(
        model,
        [
            LayerSpec("blocks.1", "cls"),
            LayerSpec("blocks.1.resid_post", "cls"),
            LayerSpec("blocks.0.attn.z@h2", "cls"),
            LayerSpec("blocks.0.attn.z@h0", "cls"),
        ],
        x,
    )
    assert [layer.name for layer in cap.layers] == [
        "blocks.1",
        "blocks.1.resid_post",
        "blocks.0.attn.z",
    ]
    np.testing.assert_array_equal(got["blocks.1"], got["blocks.1.resid_post"])
    assert got["blocks.0.attn.z"].shape == (3, 3, 64)


# --------------------------------------------------------------------------- errors


def test_cnn_asked_for_probes_names_the_supported_families() -> None:
    from torchvision.models import resnet18

    with pytest.raises(ModelError) as err:
        TorchCapture(resnet18(), [LayerSpec("blocks.0.resid_pre")], "cnn")
    message = str(err.value)
    assert "'cnn'" in message and "ResNet" in message
    assert "timm" in message and "torchvision" in message


def test_other_attention_implementation_is_refused() -> None:
    import timm
    from timm.models.vision_transformer import ResPostBlock

    model = timm.create_model("vit_tiny_patch16_224", img_size=32, depth=2, block_fn=ResPostBlock)
    with pytest.raises(ModelError, match="ResPostBlock"):
        TorchCapture(model, [], "post", ALL_METRICS)


def test_onnx_model_asked_for_probes_is_refused() -> None:
    block = {"source": "onnx", "path": "model.onnx", "layers": ["blocks.0.resid_pre"]}
    with pytest.raises(ModelError, match="ONNX"):
        ModelSpec.from_config("exported", block)
    block = {"source": "onnx", "path": "model.onnx", "layers": ["x"], "metrics": ["density"]}
    with pytest.raises(ModelError, match="ONNX"):
        ModelSpec.from_config("exported", block)


@pytest.mark.parametrize(
    ("layers", "metrics", "match"),
    [
        (["blocks.1", {"name": "blocks.0", "reduce": "cls_row"}], None, "cls_row"),
        ([{"name": "blocks.0.attn.z@h1", "as": "z1"}], None, "as:"),
        (["blocks.0@h1"], None, "head selector"),
        (["blocks.0.resid_pre@h1"], None, "head selector"),
        (["blocks.0.attn.density@h1"], None, "head selector"),
        (["blocks.0"], ["entropy"], "closest metrics: attention_entropy"),
        (["blocks.0"], {"names": ["density"], "blocks": [-1]}, "block indices"),
        (
            ["blocks.0.attn.z@h1", {"name": "blocks.0.attn.z@h2", "reduce": "mean"}],
            None,
            "same reduce",
        ),
    ],
)
def test_bad_probe_entries_are_config_errors(layers, metrics, match) -> None:
    block = {"source": "timm", "name": "vit_tiny_patch16_224", "layers": layers, "reduce": "cls"}
    if metrics is not None:
        block["metrics"] = metrics
    with pytest.raises(ModelError, match=match):
        ModelSpec.from_config("vit", block)


def test_checks_on_the_meta_device_without_running() -> None:
    base = {"source": "timm", "name": "vit_base_patch16_clip_224", "kwargs": {"img_size": 64}}
    summary = check_model(
        ModelSpec.from_config(
            "clip", {**base, "layers": ["blocks.11.attn.head_out@h3"], "metrics": ["density"]}
        )
    )
    assert summary["layers"] == ["blocks.11.attn.head_out@h3"]
    with pytest.raises(LayerError, match="12 blocks"):
        check_model(ModelSpec.from_config("clip", {**base, "layers": ["blocks.12.resid_pre"]}))
    with pytest.raises(LayerError, match="metrics.blocks"):
        check_model(
            ModelSpec.from_config(
                "clip",
                {**base, "layers": ["blocks.0"], "metrics": {"names": "all", "blocks": [20]}},
            )
        )
    no_class = {
        "source": "timm",
        "name": "vit_tiny_patch16_224",
        "kwargs": {"class_token": False, "global_pool": "avg"},
        "layers": [{"name": "blocks.0.attn.pattern", "reduce": "cls_row"}],
    }
    with pytest.raises(LayerError, match="class token"):
        check_model(ModelSpec.from_config("nocls", no_class))
    cnn = {"source": "torchvision", "name": "resnet18", "layers": ["blocks.0.attn.z"]}
    with pytest.raises(ModelError, match="ResNet"):
        check_model(ModelSpec.from_config("cnn", cnn))


def test_probe_names() -> None:
    probe = parse_probe("blocks.12.attn.head_out")
    assert probe is not None and (probe.block, probe.kind) == (12, "head")
    assert parse_probe("blocks.3.attn.sink_share").metric == "sink_share"
    assert parse_probe("blocks.03.resid_pre") is None
    assert parse_probe("blocks.3.attn") is None
    assert parse_probe("blocks.3.attn.qkv") is None


def test_a_metric_listed_as_a_layer_is_stored_once() -> None:
    model = timm_model("vit")
    got, cap = capture(
        model,
        [LayerSpec("blocks.1.attn.density", "cls"), LayerSpec("blocks.1.attn.pattern")],
        inputs(48),
        MetricSpec(("density",), (1, 2)),
    )
    assert [layer.name for layer in cap.layers] == [
        "blocks.1.attn.density",
        "blocks.1.attn.pattern",
        "blocks.2.attn.density",
    ]
    pattern = got["blocks.1.attn.pattern"].reshape(3, 3, 10, 10)
    np.testing.assert_allclose(got["blocks.1.attn.density"], ref_density(pattern), rtol=1e-6)
    assert cap.applied["blocks.1.attn.density"] == "none"
    assert cap.layer_attrs["blocks.1.attn.density"]["kind"] == "metric"
    # A metric renamed with as: is stored under its short name, besides the metrics block's.
    renamed = LayerSpec("d1", "cls", "blocks.1.attn.density")
    got2, cap2 = capture(model, [renamed], inputs(48), MetricSpec(("density",), (1,)))
    assert [layer.name for layer in cap2.layers] == ["d1", "blocks.1.attn.density"]
    np.testing.assert_array_equal(got2["d1"], got2["blocks.1.attn.density"])
    np.testing.assert_array_equal(got2["d1"], got["blocks.1.attn.density"])


def test_actpipe_layers_lists_the_probes_of_a_transformer(capsys) -> None:
    from actpipe.cli import main

    kwargs = '{"img_size": 32, "depth": 2, "reg_tokens": 4}'
    assert main(["layers", "timm:vit_tiny_patch16_224", "--size", "32", "--kwargs", kwargs]) == 0
    out = capsys.readouterr().out
    assert "transformer probes (timm, 3 heads, 5 prefix token(s)" in out
    assert "for i in 0..1" in out and "attn.head_out" in out and "density" in out
    assert main(["layers", "torchvision:resnet18", "--size", "32", "--json"]) == 0
    assert '"probes": null' in capsys.readouterr().out


def test_torchvision_vit_b_16_through_the_registry() -> None:
    from actpipe.extraction.backends import open_backend

    block = {
        "source": "torchvision",
        "name": "vit_b_16",
        "kwargs": {"image_size": 32},
        "layers": [{"name": "blocks.11.attn.pattern", "reduce": "cls_row"}, "blocks.5.resid_mid"],
        "reduce": "cls",
        "metrics": {"names": "all", "blocks": [0, 11]},
        "preprocess": {"preset": "imagenet", "size": 32, "resize": 32},
    }
    spec = ModelSpec.from_config("tv", block)
    assert check_model(spec)["metrics"] == {"names": list(METRICS), "blocks": [0, 11]}
    backend = open_backend(spec, device_name="cpu")
    try:
        with torch.inference_mode():
            out = backend.capture.run(inputs(32, n=2))
        assert backend.transformer["prefix_tokens"] == 1 and backend.transformer["grid"] == [2, 2]
    finally:
        backend.close()
    pattern = out["blocks.11.attn.pattern"].reshape(2, 12, 5)
    torch.testing.assert_close(pattern.sum(-1), torch.ones(2, 12))
    assert out["blocks.5.resid_mid"].shape == (2, 768)
    for block_index in (0, 11):
        sink = out[f"blocks.{block_index}.attn.sink_share"]
        norm = out[f"blocks.{block_index}.attn.attention_entropy_norm"]
        assert sink.shape == norm.shape == (2, 12)
        assert bool(((sink >= 0) & (sink <= 1)).all() and ((norm >= 0) & (norm <= 1 + 1e-6)).all())
