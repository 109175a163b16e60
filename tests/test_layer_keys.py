"""Any layer name works everywhere: keys, files, readers, commands, clusters and reports."""

from __future__ import annotations

import json
import random

import h5py
import numpy as np
import pytest

from actpipe.cli import main
from actpipe.errors import ModelError
from actpipe.models import ModelSpec
from actpipe.names import entry_names, is_layer_key, layer_key, layer_name
from actpipe.storage.convert import export_per_stimulus, import_per_stimulus
from actpipe.storage.reader import get_available_layers, load_lazy_activations, read_layer
from actpipe.storage.validate import validate_file
from tests.helpers.files import write_model_file

AWKWARD = [
    "/conv/conv.6/Relu_output_0",  # torch's exporter
    "model/conv2d/Relu:0",  # tf2onnx
    "blocks 3 (attn)",
    "Schicht ä/früh",
    ".hidden",
    "-dash",
    "trailing.",
    "tilde~2F",
    "plain.name_1-x",
]


def test_keys_are_safe_reversible_and_distinct():
    keys = [layer_key(name) for name in AWKWARD]
    assert len(set(keys)) == len(AWKWARD)
    for name, key in zip(AWKWARD, keys, strict=True):
        assert layer_name(key) == name
        assert set(key) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")
        assert not key.startswith((".", "-")) and not key.endswith(".")
    assert layer_key("layer4.1.conv2") == "layer4.1.conv2"  # ordinary names stay as they are
    assert layer_key("/conv/conv.6/Relu_output_0") == "~2Fconv~2Fconv.6~2FRelu_output_0"
    assert layer_key("tilde~2F") == "tilde~7E2F"  # the escape character is escaped itself


def test_random_names_round_trip():
    rng = random.Random(0)
    alphabet = "abcXYZ019._-~/: @#%äöüß漢字🙂\t"
    names = {"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(500)}
    keys = {layer_key(n): n for n in names}
    assert len(keys) == len(names)  # injective
    assert all(layer_name(k) == n and is_layer_key(k) for k, n in keys.items())


@pytest.mark.parametrize("text", ["a/b", "~2f", "~2", "~ZZ", "~2Fa~", "%2F", ".a", "a."])
def test_strings_that_are_not_keys_are_refused(text):
    assert not is_layer_key(text)
    with pytest.raises(ValueError):
        layer_name(text)


def test_too_long_names_ask_for_a_short_name():
    with pytest.raises(ValueError, match="as:"):
        layer_key("/" * 100)


def test_entries_going_by_one_name_are_an_error_naming_both():
    assert entry_names(["a", {"name": "/x:0", "as": "b"}]) == [("a", "a"), ("b", "/x:0")]
    with pytest.raises(ValueError, match=r"'conv3' and \{name: '/c/Relu_output_0', as: 'conv3'\}"):
        entry_names(["conv3", {"name": "/c/Relu_output_0", "as": "conv3"}], "models.m.layers")
    with pytest.raises(ValueError, match="letter case"):
        entry_names(["Conv", "conv"])
    with pytest.raises(ModelError, match="model 'm'.*both go by the name 'layer1'"):
        ModelSpec.from_config(
            "m",
            {
                "source": "torchvision",
                "name": "resnet18",
                "layers": ["layer1", {"name": "layer2", "as": "layer1"}],
            },
        )


def awkward_file(path, n=7, n_rep=2):
    rng = np.random.default_rng(0)
    ids = [f"s{i}" for i in range(n)]
    layers = {
        name: rng.standard_normal((n, n_rep, d)).astype(np.float32)
        for name, d in zip(AWKWARD, range(3, 3 + len(AWKWARD)), strict=True)
    }
    return write_model_file(path, "m", ids, layers), ids, layers


def test_files_store_every_layer_under_its_key_and_read_by_name(tmp_path):
    path, ids, layers = awkward_file(tmp_path / "m.h5")
    assert validate_file(path) == []
    with h5py.File(path, "r") as f:
        assert sorted(f.keys()) == ["m"]  # nothing outside the model group
        stored = f["m/layers"]
        assert all(isinstance(stored[k], h5py.Dataset) for k in stored)  # no nested groups
        assert sorted(stored) == sorted(layer_key(n) for n in AWKWARD)
        for name in AWKWARD:
            assert stored[layer_key(name)].attrs["name"] == name
    assert get_available_layers(path, "m") == AWKWARD
    for name, values in layers.items():
        np.testing.assert_array_equal(read_layer(path, "m", name), values)
    with load_lazy_activations(path) as acts:
        np.testing.assert_array_equal(acts["m"][ids[2]][AWKWARD[0]], layers[AWKWARD[0]][2])
        assert acts["m"].layer(AWKWARD[1]).key == layer_key(AWKWARD[1])
        with pytest.raises(KeyError, match="no layer 'model/conv2d/Relu:1'.*Relu:0"):
            acts["m"].layer("model/conv2d/Relu:1")


def test_a_layer_outside_its_key_fails_validation(tmp_path):
    path, _, _ = awkward_file(tmp_path / "m.h5")
    with h5py.File(path, "r+") as f:
        f.move(f"m/layers/{layer_key('blocks 3 (attn)')}", "m/layers/blocks3")
    problems = [str(p) for p in validate_file(path)]
    assert any("stored under 'blocks3'" in p for p in problems)


def test_inspect_shows_names_keys_and_cluster_takes_names(tmp_path, capsys):
    path, ids, layers = awkward_file(tmp_path / "m.h5")
    assert main(["inspect", str(path), "--show-layers"]) == 0
    out = capsys.readouterr().out
    assert "stored as" in out
    for name in AWKWARD:
        assert name in out and layer_key(name) in out
    out_dir = tmp_path / "clusters"
    name = "Schicht ä/früh"
    code = main(
        ["cluster", str(path), "--layer", name, "--layer", AWKWARD[0], "--clusters", "2"]
        + ["--kmeans", "--out", str(out_dir)]
    )
    assert code == 0
    folder = out_dir / "m" / "kmeans_k2"
    assert (folder / "layers" / f"{layer_key(name)}.h5").is_file()
    paths = json.loads((folder / "paths.json").read_text())
    assert paths["layers"] == [name, AWKWARD[0]]
    quality = (folder / "quality.tsv").read_text().splitlines()
    assert [row.split("\t")[0] for row in quality[1:]] == [name, AWKWARD[0]]
    centroids = json.loads((folder / "centroids.json").read_text())
    assert list(centroids) == [name, AWKWARD[0]]
    with h5py.File(folder / "centroids.h5", "r") as f:
        assert sorted(f) == sorted([layer_key(name), layer_key(AWKWARD[0])])
        assert f[layer_key(name)].attrs["name"] == name


def test_per_stimulus_export_and_import_keep_names(tmp_path):
    path, _, layers = awkward_file(tmp_path / "m.h5")
    old = export_per_stimulus(path, tmp_path / "old.h5")
    with h5py.File(old, "r") as f:
        assert sorted(f["m/s0"]) == sorted(layer_key(n) for n in AWKWARD)
    back = import_per_stimulus(old, tmp_path / "back.h5")["m"]
    assert validate_file(back) == []
    assert get_available_layers(back, "m") == AWKWARD
    for name, values in layers.items():
        np.testing.assert_array_equal(read_layer(back, "m", name), values)


def test_report_escapes_names_in_tables():
    from actpipe.report import code

    assert code("a|b") == "`a\\|b`"
    assert code("x`y") == "`` x`y ``"


def test_extraction_stores_short_names_and_the_module_captured(tmp_path):
    from actpipe.extraction import ExtractionOptions, extract_activations
    from actpipe.stimuli import materialise_stimuli

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
    block = {
        "source": "torchvision",
        "name": "resnet18",
        "layers": [
            {"name": "layer1", "as": "early/1: früh"},
            {"name": "layer1", "as": "early_mean", "reduce": "mean"},
        ],
        "preprocess": {"preset": "imagenet", "size": 32, "resize": 32},
    }
    spec = ModelSpec.from_config("r", block)
    out = extract_activations(spec, stimuli, tmp_path / "r.h5", ExtractionOptions(progress=False))
    assert validate_file(out) == []
    assert get_available_layers(out, "r") == ["early/1: früh", "early_mean"]
    full = read_layer(out, "r", "early/1: früh")
    pooled = read_layer(out, "r", "early_mean")
    with h5py.File(out, "r") as f:
        attrs = f["r/layers"][layer_key("early/1: früh")].attrs
        assert attrs["module"] == "layer1" and attrs["name"] == "early/1: früh"
    # the same module, reduced two ways in one pass: the mean of the whole output
    n, r = full.shape[:2]
    channels = pooled.shape[2]
    np.testing.assert_allclose(
        full.reshape(n, r, channels, -1).mean(axis=3), pooled, rtol=1e-5, atol=1e-6
    )
