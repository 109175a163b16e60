"""Transformer probes and attention metrics in activation files.

Written by extraction, read back with plain h5py and with the reader (whole, one head at a
time, by stimulus id), clustered whole or per head, validated, merged from shards, exported
to the per-stimulus layout and imported back, appended to; and every stored metric equal to
numpy computed from the patterns, values and mixes stored in the same file.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from actpipe.clustering.source import LayerSource
from actpipe.errors import ActivationKeyError
from actpipe.extraction import ExtractionOptions, extract_activations
from actpipe.preprocess import Jitter
from actpipe.probes import METRICS
from actpipe.stimuli import materialise_stimuli
from actpipe.storage import merge_shards
from actpipe.storage.append import append_file
from actpipe.storage.convert import export_per_stimulus, import_per_stimulus
from actpipe.storage.reader import get_activation_shape, load_lazy_activations, read_layer
from actpipe.storage.validate import validate_file
from tests.helpers.transformers import (
    probe_spec,
    ref_metrics,
)

OPTIONS = ExtractionOptions(
    n_replicates=2, jitter=Jitter(translate=2, rotate=5, seed=0), progress=False
)


@pytest.fixture(scope="module")
def stimuli(tmp_path_factory):
    root = tmp_path_factory.mktemp("stimuli")
    return materialise_stimuli(
        {
            "source": "gratings",
            "size": 48,
            "orientations": 3,
            "phases": 1,
            "spatial_frequencies": [2, 4],
        },
        root / "gratings",
    )


def full_probes(blocks) -> list:
    return [
        {"name": f"blocks.{i}.attn.{site}", "reduce": "flatten"}
        for i in blocks
        for site in ("pattern", "v", "z")
    ]


@pytest.mark.parametrize("family", ["dinov2_registers_layerscale", "torchvision"])
def test_stored_metrics_equal_numpy_on_the_stored_patterns(tmp_path, stimuli, family):
    spec, model, size = probe_spec(tmp_path, family, full_probes(range(2)))
    out = extract_activations(spec, stimuli, tmp_path / "acts.h5", OPTIONS, "gratings")
    with h5py.File(out, "r") as f:
        group = f[family]
        info = json.loads(group.attrs["transformer"])
        prefix, grid, patch = info["prefix_tokens"], tuple(info["grid"]), tuple(info["patch_size"])
        tokens = prefix + grid[0] * grid[1]
        layers = group["layers"]
        for i in range(2):
            pattern = layers[f"blocks.{i}.attn.pattern"][()]
            n, r, h, _ = pattern.shape
            axes = json.loads(layers[f"blocks.{i}.attn.pattern"].attrs["axes"])
            assert axes == ["stimulus", "replicate", "head", "feature"]
            pattern = pattern.reshape(n, r, h, tokens, tokens)
            v = layers[f"blocks.{i}.attn.v"][()].reshape(n, r, h, tokens, -1)
            z = layers[f"blocks.{i}.attn.z"][()].reshape(n, r, h, tokens, -1)
            if family == "torchvision":
                weight = model.encoder.layers[i].self_attention.out_proj.weight
            else:
                weight = model.blocks[i].attn.proj.weight
            weight = weight.detach().numpy()
            expected = ref_metrics(pattern, v, z, weight, prefix, grid, patch)
            assert set(expected) == set(METRICS)
            for metric, value in expected.items():
                dset = layers[f"blocks.{i}.attn.{metric}"]
                assert dset.shape == (n, r, h)
                assert [d.label for d in dset.dims] == ["stimulus", "replicate", "head"]
                assert dset.attrs["kind"] == "metric" and dset.attrs["metric"] == metric
                np.testing.assert_allclose(dset[()], value, rtol=1e-4, atol=1e-5, err_msg=metric)
            # Replicates differ (jittered exposures), and so do the metrics.
            assert not np.allclose(pattern[:, 0], pattern[:, 1])
    assert validate_file(out) == []


def test_per_head_layers_read_select_and_cluster(tmp_path, stimuli):
    layers = [
        "blocks.1",
        "blocks.1.attn.z@h1",
        "blocks.1.attn.z@h2",
        {"name": "blocks.2.attn.pattern", "reduce": "cls_row"},
        "blocks.0.resid_mid",
    ]
    spec, _, _ = probe_spec(tmp_path, "vit", layers, metrics=["sink_share"])
    out = extract_activations(spec, stimuli, tmp_path / "acts.h5", OPTIONS, "gratings")
    with h5py.File(out, "r") as f:
        z = f["vit/layers/blocks.1.attn.z"][()]
        pattern = f["vit/layers/blocks.2.attn.pattern"][()]
        order = json_list(f["vit"].attrs["layer_order"])
        dset = f["vit/layers/blocks.1.attn.z"]
        assert [d.label for d in dset.dims] == ["stimulus", "replicate", "head", "feature"]
        assert dset.attrs["heads"] == 3 and dset.attrs["feature_dim"] == 3 * 64
        ids = f["vit/stimulus_ids"].asstr()[()].tolist()
    assert z.shape == (6, 2, 3, 64) and pattern.shape == (6, 2, 3, 10)
    np.testing.assert_allclose(pattern.sum(-1), 1.0, atol=1e-5)
    # Stored once, in config order, then the metrics.
    assert order == [
        "blocks.1",
        "blocks.1.attn.z",
        "blocks.2.attn.pattern",
        "blocks.0.resid_mid",
        *(f"blocks.{i}.attn.sink_share" for i in range(3)),
    ]
    with load_lazy_activations(out) as acts:
        lazy = acts["vit"]
        view = lazy.layer("blocks.1.attn.z")
        assert view.shape == (6, 2, 3, 64) and view.heads == 3 and view.feature_dim == 192
        assert view.axes == ["stimulus", "replicate", "head", "feature"]
        np.testing.assert_array_equal(view.read(), z)
        np.testing.assert_allclose(view.replicate_mean().read(), z.mean(1), rtol=1e-6)
        assert view.replicate_mean().axes == ["stimulus", "head", "feature"]
        head = lazy.layer("blocks.1.attn.z@h2")
        assert head.shape == (6, 2, 64) and head.heads is None
        np.testing.assert_array_equal(head.read(), z[:, :, 2])
        np.testing.assert_array_equal(view.head(2).read([ids[4], ids[1]]), z[[4, 1], :, 2])
        np.testing.assert_array_equal(head[ids[3]], z[3, :, 2])
        np.testing.assert_array_equal(lazy[ids[0]]["blocks.1.attn.z"], z[0])
        np.testing.assert_array_equal(lazy[ids[0]]["blocks.1.attn.z@h1"], z[0, :, 1])
        assert lazy.shape("blocks.1.attn.z") == (6, 2, 3, 64)
        with pytest.raises(ActivationKeyError, match="3 heads"):
            lazy.layer("blocks.1.attn.z@h3")
        with pytest.raises(ActivationKeyError, match="no head axis"):
            lazy.layer("blocks.1@h0")
    assert get_activation_shape(out, "vit", "blocks.1.attn.z") == (2, 192)
    np.testing.assert_array_equal(read_layer(out, "vit", "blocks.1.attn.z@h1"), z[:, :, 1])

    with LayerSource(out, "vit", "blocks.1.attn.z@h1") as source:
        _, rows = source.read(np.arange(6))
    np.testing.assert_allclose(rows, z[:, :, 1].astype(np.float64).mean(1), rtol=1e-12)
    with LayerSource(out, "vit", "blocks.1.attn.z", replicates="each") as source:
        _, rows = source.read(np.arange(6))
    np.testing.assert_array_equal(rows, z.reshape(12, 192))

    from actpipe.clustering import cluster_layer

    result = tmp_path / "h1.h5"
    cluster_layer(out, "vit", "blocks.1.attn.z@h1", {"method": "kmeans", "k": 2}, result, "k2")
    with h5py.File(result, "r") as f:
        labels = f["labels"][()]
        assert f.attrs["layer"] == "blocks.1.attn.z@h1"
        assert f["centroids"].shape == (2, 64)
    from sklearn.cluster import KMeans

    expected = KMeans(2, random_state=0, n_init=10).fit_predict(
        z[:, :, 1].astype(np.float64).mean(1)
    )
    assert adjusted_rand(labels, expected) == 1.0


def json_list(value) -> list:
    return json.loads(value)


def adjusted_rand(a, b) -> float:
    from sklearn.metrics import adjusted_rand_score

    return adjusted_rand_score(a, b)


def test_shards_export_import_and_append_keep_the_head_axis(tmp_path, stimuli):
    layers = ["blocks.0.attn.head_out@h0", {"name": "blocks.1.attn.pattern", "reduce": "mean"}]
    spec, _, _ = probe_spec(tmp_path, "vit", layers, metrics=["density"])
    whole = extract_activations(spec, stimuli, tmp_path / "whole.h5", OPTIONS, "g")
    shards = [
        extract_activations(spec, stimuli, tmp_path / f"s{i}.h5", OPTIONS, "g", rows=rows)
        for i, rows in enumerate([(0, 4), (4, 6)])
    ]
    merged = merge_shards(shards, tmp_path / "merged.h5", "vit")
    with h5py.File(whole, "r") as a, h5py.File(merged, "r") as b:
        for name in a["vit/layers"]:
            np.testing.assert_array_equal(a["vit/layers"][name][()], b["vit/layers"][name][()])
        dset = b["vit/layers/blocks.0.attn.head_out"]
        assert dset.is_virtual and dset.shape == (6, 2, 3, 192)
        assert [d.label for d in dset.dims] == ["stimulus", "replicate", "head", "feature"]
    assert validate_file(merged) == []

    flat = export_per_stimulus(whole, tmp_path / "old.h5")
    with h5py.File(flat, "r") as f:
        sid = list(f["vit"].keys())[0]
        assert f["vit"][sid]["blocks.0.attn.head_out"].shape == (2, 3 * 192)
    back = import_per_stimulus(flat, tmp_path / "back.h5")["vit"]
    with h5py.File(whole, "r") as a, h5py.File(back, "r") as b:
        for name in a["vit/layers"]:
            np.testing.assert_array_equal(a["vit/layers"][name][()], b["vit/layers"][name][()])
        assert b["vit/layers/blocks.0.attn.head_out"].shape == (6, 2, 3, 192)

    first = extract_activations(spec, stimuli, tmp_path / "first.h5", OPTIONS, "g", rows=(0, 4))
    append_file(first, shards[1])
    with h5py.File(whole, "r") as a, h5py.File(first, "r") as b:
        for name in a["vit/layers"]:
            np.testing.assert_array_equal(a["vit/layers"][name][()], b["vit/layers"][name][:6])
    assert validate_file(first) == []


def test_validate_reports_a_four_dimensional_layer_without_axes(tmp_path, stimuli):
    spec, _, _ = probe_spec(tmp_path, "vit", ["blocks.0.attn.q"], metrics=None)
    out = extract_activations(spec, stimuli, tmp_path / "acts.h5", OPTIONS, "g")
    with h5py.File(out, "r+") as f:
        del f["vit/layers/blocks.0.attn.q"].attrs["axes"]
    problems = validate_file(out)
    assert len(problems) == 1 and "axes" in problems[0].message


def test_a_probe_renamed_with_as_is_stored_under_its_short_name(tmp_path, stimuli):
    layers = [
        {"name": "blocks.1.attn.z", "as": "z1", "reduce": "flatten"},
        "blocks.1.attn.z@h2",
        {"name": "blocks.1.resid_mid", "as": "mid1", "reduce": "flatten"},
        "blocks.1.resid_mid",
    ]
    spec, _, _ = probe_spec(tmp_path, "vit", layers, metrics=None)
    out = extract_activations(spec, stimuli, tmp_path / "acts.h5", OPTIONS, "g")
    with h5py.File(out, "r") as f:
        short = f["vit/layers/z1"]
        full = f["vit/layers/blocks.1.attn.z"]
        assert short.attrs["module"] == "blocks.1.attn.z" and short.shape == (6, 2, 3, 640)
        assert full.attrs["reduce"] == "cls" and full.shape == (6, 2, 3, 64)
        # The class token's z is token 0 of the whole z.
        np.testing.assert_array_equal(short[()][..., :64], full[()])
        mid = f["vit/layers/mid1"][()].reshape(6, 2, 10, 192)
        np.testing.assert_array_equal(mid[:, :, 0], f["vit/layers/blocks.1.resid_mid"][()])
        z1 = short[()]
    with load_lazy_activations(out) as acts:
        np.testing.assert_array_equal(acts["vit"].layer("z1@h2").read(), z1[:, :, 2])


def test_block_output_is_the_residual_stream_leaving_the_block(tmp_path, stimuli):
    spec, _, _ = probe_spec(tmp_path, "vit", ["blocks.1", "blocks.1.resid_post"], None)
    out = extract_activations(spec, stimuli, tmp_path / "acts.h5", OPTIONS, "g")
    with h5py.File(out, "r") as f:
        layer = f["vit/layers/blocks.1"]
        assert layer.ndim == 3 and "axes" not in layer.attrs and "kind" not in layer.attrs
        resid = f["vit/layers/blocks.1.resid_post"]
        assert resid.attrs["kind"] == "probe" and resid.attrs["block_module"] == "blocks.1"
        np.testing.assert_array_equal(resid[()], layer[()])


def test_analyses_of_every_layer_leave_the_metrics_out(tmp_path, stimuli, capsys):
    from actpipe.cli import main
    from actpipe.storage.reader import get_available_layers

    spec, _, _ = probe_spec(tmp_path, "vit", ["blocks.1", "blocks.1.attn.z"], ["density"])
    out = extract_activations(spec, stimuli, tmp_path / "acts.h5", OPTIONS, "g")
    everything = get_available_layers(out, "vit")
    assert [f"blocks.{i}.attn.density" for i in range(3)] == everything[2:]
    assert get_available_layers(out, "vit", metrics=False) == ["blocks.1", "blocks.1.attn.z"]
    args = ["cluster", str(out), "--clusters", "2", "--kmeans", "--out", str(tmp_path / "c")]
    assert main(args) == 0
    paths = json.loads((tmp_path / "c/vit/kmeans_k2/paths.json").read_text())
    assert paths["layers"] == ["blocks.1", "blocks.1.attn.z"]
    assert main([*args, "--layer", "blocks.1.attn.z@h2", "--out", str(tmp_path / "d")]) == 0
    paths = json.loads((tmp_path / "d/vit/kmeans_k2/paths.json").read_text())
    assert paths["layers"] == ["blocks.1.attn.z@h2"]
    capsys.readouterr()
    assert main(["inspect", str(out), "--show-layers"]) == 0
    table = capsys.readouterr().out
    z_row = next(line for line in table.splitlines() if line.strip().startswith("blocks.1.attn.z "))
    assert "6x2x3x64" in z_row and z_row.split()[-1] == "probe"
    density = next(line for line in table.splitlines() if "blocks.0.attn.density" in line)
    assert "6x2x3" in density and density.split()[-1] == "metric"


def test_similarity_takes_a_per_head_layer_as_its_flattened_pattern(tmp_path, stimuli):
    from scipy.spatial.distance import pdist

    from actpipe.similarity import compute_rdms
    from actpipe.similarity.files import RDMFile

    layers = ["blocks.1", "blocks.1.attn.z", "blocks.1.attn.z@h1"]
    spec, _, _ = probe_spec(tmp_path, "vit", layers, ["density"])
    out = extract_activations(spec, stimuli, tmp_path / "acts.h5", OPTIONS, "g")
    rdms = compute_rdms(
        out, tmp_path / "rdms.h5", stimuli=stimuli.root, options={"distances": ["correlation"]}
    )
    with h5py.File(out, "r") as f:
        z = f["vit/layers/blocks.1.attn.z"][()].astype(np.float64).mean(1)  # (n, heads, dim)
    with RDMFile(rdms) as r:
        assert r.layers == ["blocks.1", "blocks.1.attn.z"]  # metrics left out
        np.testing.assert_allclose(
            r.stimulus_rdm("blocks.1.attn.z"),
            pdist(z.reshape(len(z), -1), "correlation"),
            atol=1e-10,
        )
    rdms = compute_rdms(
        out,
        tmp_path / "h1.h5",
        layers=["blocks.1.attn.z@h1"],
        options={"distances": ["correlation"]},
    )
    with RDMFile(rdms) as r:
        np.testing.assert_allclose(
            r.stimulus_rdm("blocks.1.attn.z@h1"), pdist(z[:, 1], "correlation"), atol=1e-10
        )
