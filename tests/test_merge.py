"""``actpipe merge`` / ``merge_files``: one model's files on several sets or shards joined,
virtual or copied, and refused when they were made differently."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from actpipe.cli import main
from actpipe.errors import FormatError
from actpipe.storage import join_activations, merge_files, merge_shards
from actpipe.storage.reader import load_lazy_activations, read_layer
from actpipe.storage.validate import validate_file
from tests.helpers.files import PROVENANCE, random_model, write_model_file

DIMS = {"conv": 6, "fc": 3}


def model_file(path, seed, n=5, prefix="", attrs=None, dims=DIMS):
    ids, layers, jitter = random_model(n, 2, dims, seed=seed)
    ids = [f"{prefix}{sid}" for sid in ids]
    write_model_file(path, "m", ids, layers, jitter, attrs=attrs)
    return ids, layers, jitter


@pytest.fixture
def two_sets(tmp_path):
    first = model_file(tmp_path / "a" / "m.h5", 1, 5, "a_", {**PROVENANCE, "stimulus_set": "a"})
    second = model_file(tmp_path / "b" / "m.h5", 2, 4, "b_", {**PROVENANCE, "stimulus_set": "b"})
    return tmp_path / "a" / "m.h5", tmp_path / "b" / "m.h5", first, second


@pytest.mark.parametrize("copy", [False, True])
def test_merged_rows_are_the_inputs_rows_in_order(two_sets, tmp_path, copy):
    pa, pb, (ids_a, la, ja), (ids_b, lb, jb) = two_sets
    out = merge_files([pa, pb], tmp_path / "out" / "merged.h5", copy=copy)
    assert validate_file(out) == []
    with load_lazy_activations(out) as acts:
        model = acts["m"]
        assert model.stimulus_ids == ids_a + ids_b
        np.testing.assert_array_equal(model.jitter(), np.concatenate([ja, jb]))
        for layer in DIMS:
            np.testing.assert_array_equal(
                model.layer(layer).read(), np.concatenate([la[layer], lb[layer]])
            )
        assert model.attrs["stimulus_set"] == "a+b"
        assert model.attrs["n_stimuli"] == 9
        assert [m["rows"] for m in model.attrs["merged_from"]] == [[0, 5], [5, 9]]
        assert model.attrs["merged_from"][0]["path"] == "../a/m.h5"
    with h5py.File(out, "r") as f:
        assert f["m/layers/conv"].is_virtual is (not copy)
        assert f["m/jitter"].attrs["fields"] is not None
        with h5py.File(pa, "r") as source:
            for key, value in source["m/layers/conv"].attrs.items():
                np.testing.assert_array_equal(f["m/layers/conv"].attrs[key], value)
    if copy:  # self-contained: the inputs can go
        pa.unlink()
        np.testing.assert_array_equal(read_layer(out, "m", "fc")[:5], la["fc"])


def test_inputs_made_differently_are_refused_naming_the_difference(two_sets, tmp_path):
    pa, _, _, _ = two_sets
    cases = {
        "size.h5": ({**PROVENANCE, "preprocess": {"size": 16}}, DIMS, "preprocess.size: 8 vs 16"),
        "seed.h5": ({**PROVENANCE, "seed": 3}, DIMS, "seed: 0 vs 3"),
        "weights.h5": (
            {**PROVENANCE, "weights": {"kind": "random", "seed": 1}},
            DIMS,
            "weights.seed: 0 vs 1",
        ),
        "layers.h5": (PROVENANCE, {"conv": 6}, "layer_order"),
        "width.h5": (PROVENANCE, {"conv": 7, "fc": 3}, "layer 'conv' \\(/layers\\) has shape"),
    }
    for name, (attrs, dims, message) in cases.items():
        other = tmp_path / name
        model_file(other, 5, 3, "z_", attrs, dims)
        with pytest.raises(FormatError, match=f"{other}.*{pa}.*{message}"):
            merge_files([pa, other], tmp_path / "out.h5")
        assert not (tmp_path / "out.h5").exists()


def test_other_model_and_repeated_ids(two_sets, tmp_path):
    pa, pb, (ids_a, _, _), _ = two_sets
    ids, layers, jitter = random_model(3, 2, DIMS, seed=9)
    write_model_file(tmp_path / "n.h5", "n", ids, layers, jitter)
    with pytest.raises(FormatError, match="different models \\(m, n\\)"):
        merge_files([pa, tmp_path / "n.h5"], tmp_path / "out.h5")
    twin = tmp_path / "twin" / "m.h5"
    model_file(twin, 3, 5, "a_", {**PROVENANCE, "stimulus_set": "twin"})
    with pytest.raises(FormatError, match=f"'{ids_a[0]}' is in both {pa} and {twin}.*namespace"):
        merge_files([pa, twin], tmp_path / "out.h5")
    out = merge_files([pa, twin], tmp_path / "out.h5", namespace=True)
    with load_lazy_activations(out) as acts:
        assert acts["m"].stimulus_ids[:5] == [f"a:{sid}" for sid in ids_a]
        assert acts["m"].stimulus_ids[5:][0].startswith("twin:a_")


def test_joined_files_and_merged_shards_are_inputs_too(two_sets, tmp_path):
    pa, pb, (ids_a, la, _), (ids_b, lb, _) = two_sets
    joined = join_activations(tmp_path / "joined_b.h5", {"m": pb})
    halves = merge_shards([pa], tmp_path / "shards_a.h5", "m")
    out = merge_files([halves, joined], tmp_path / "merged.h5")
    np.testing.assert_array_equal(
        read_layer(out, "m", "conv"), np.concatenate([la["conv"], lb["conv"]])
    )
    assert validate_file(out) == []
    with h5py.File(halves, "r") as f:
        assert json.loads(f["m"].attrs["shards"]) == ["a/m.h5"]


def test_gradient_files_keep_their_quantities_links_and_targets(tmp_path):
    from PIL import Image

    from actpipe.extraction import ExtractionOptions
    from actpipe.gradients import GradientOptions, compute_gradients
    from actpipe.models import ModelSpec

    spec = ModelSpec.from_config(
        "tiny",
        {
            "source": "python",
            "name": "tests.helpers.models:small_net",
            "layers": ["conv", {"name": "conv2", "reduce": "flatten"}],
            "reduce": "mean",
            "preprocess": {"preset": "none", "size": 8, "resize": 8},
            "batch_size": 4,
        },
    )
    options = ExtractionOptions.from_config({"n_replicates": 2, "jitter": {"translate": 1}})
    files = []
    for name, shade in (("light", 200), ("dark", 30)):
        folder = tmp_path / name
        folder.mkdir()
        for i in range(3):
            Image.fromarray(np.full((8, 8, 3), shade + 5 * i, np.uint8)).save(
                folder / f"{name}{i}.png"
            )
        files.append(
            compute_gradients(spec, folder, tmp_path / f"{name}.h5", options, GradientOptions())
        )
    code = main(["merge", str(tmp_path / "g.h5"), *map(str, files)])
    assert code == 0
    with h5py.File(tmp_path / "g.h5", "r") as f, h5py.File(files[0], "r") as a:
        with h5py.File(files[1], "r") as b:
            group = f["tiny"]
            assert isinstance(group.get("activation_x_gradient", getlink=True), h5py.SoftLink)
            for path in ("layers/conv", "gradient/conv2", "target_index", "target_value"):
                np.testing.assert_array_equal(
                    group[path][()], np.concatenate([a[f"tiny/{path}"][()], b[f"tiny/{path}"][()]])
                )
            assert group["activation_x_gradient/conv"].attrs["quantity"] == "activation_x_gradient"
    other = GradientOptions.from_config({"target": {"index": 1}})
    third = compute_gradients(spec, tmp_path / "dark", tmp_path / "i.h5", options, other)
    with pytest.raises(FormatError, match="target.kind: 'predicted' vs 'index'"):
        merge_files([files[0], third], tmp_path / "bad.h5")


def test_merge_command_reports_errors(two_sets, tmp_path, capsys):
    pa, pb, _, _ = two_sets
    assert main(["merge", str(tmp_path / "m.h5"), str(pa), str(pb), "--copy"]) == 0
    assert "9 stimuli from 2 file(s), 2 layers (copied)" in capsys.readouterr().out
    assert main(["merge", str(tmp_path / "x.h5"), str(pa), str(pa)]) == 1
    assert "is in both" in capsys.readouterr().err
