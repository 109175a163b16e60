"""Import of the per-example NumPy layout ``{layer}/{example_id}.npy`` (``actpipe import DIR``),
checked against the ``.npy`` files read with plain numpy."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pytest

from actpipe.cli import main
from actpipe.errors import FormatError
from actpipe.storage import StorageOptions
from actpipe.storage.npy_layout import import_npy_layout, natural_key
from actpipe.storage.reader import load_lazy_activations
from actpipe.storage.validate import validate_file
from tests.helpers.npy_tree import BACKEND_LAYERS, backend_activations, write_backend_tree


def read_tree(root: Path, layer: str) -> dict[str, np.ndarray]:
    """Every array of a layer folder, by example id, read with plain numpy."""
    return {p.name[:-4]: np.load(p) for p in (root / layer).glob("*.npy")}


def save_layer(root: Path, layer: str, arrays: dict[str, np.ndarray]) -> None:
    (root / layer).mkdir(parents=True, exist_ok=True)
    for sid, values in arrays.items():
        np.save(root / layer / f"{sid}.npy", values)


def no_leftovers(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_backend_tree_imports_value_for_value(tmp_path):
    acts = backend_activations(12)
    root = write_backend_tree(tmp_path / "activation_cache" / "CelebA", acts)
    out = tmp_path / "CelebA.h5"
    assert main(["import", str(root), str(out)]) == 0

    ids = [str(i) for i in range(12)]  # natural order: 10 and 11 after 9
    with h5py.File(out, "r") as f:
        assert list(f) == ["CelebA"]
        group = f["CelebA"]
        assert group["stimulus_ids"].asstr()[()].tolist() == ids
        assert json.loads(group.attrs["layer_order"]) == ["conv1", "conv2", "fc1"]
        assert group.attrs["imported_from"] == str(root)
        imported = json.loads(group.attrs["imported"])
        assert imported["layers_from"] == "metadata.json"
        assert imported["metadata"]["layers"] == ["conv1", "conv2", "fc1"]
        assert np.isnan(group["jitter"][()]).all() and group["jitter"].shape == (12, 1, 4)
        for layer, shape in BACKEND_LAYERS.items():
            files = read_tree(root, layer)
            dset = group["layers"][layer]
            expected = np.stack([files[sid].reshape(1, -1) for sid in ids])
            assert dset.shape == (12, 1, int(np.prod(shape))) and dset.dtype == np.float32
            np.testing.assert_array_equal(dset[()], expected)
            assert tuple(dset.attrs["original_shape"]) == shape
            assert dset.attrs["source_dtype"] == "float32"
    assert validate_file(out) == []
    assert main(["validate", str(out)]) == 0
    with load_lazy_activations(out) as lazy:  # the reading API sees the same values
        np.testing.assert_array_equal(
            lazy["CelebA"]["10"]["fc1"], np.load(root / "fc1" / "10.npy").reshape(1, -1)
        )


def test_natural_order_of_ids_and_layer_folders(tmp_path):
    root = tmp_path / "net"
    rng = np.random.default_rng(1)
    ids = ["img_10", "img_2", "img_1", "b", "a10", "a9", "img_02"]
    for layer in ("layer10", "layer2", "layer1"):
        save_layer(root, layer, {sid: rng.standard_normal(3) for sid in ids})
    out = import_npy_layout(root, tmp_path / "net.h5")
    with h5py.File(out, "r") as f:
        assert f["net/stimulus_ids"].asstr()[()].tolist() == [
            "a9",
            "a10",
            "b",
            "img_1",
            "img_02",
            "img_2",
            "img_10",
        ]
        assert json.loads(f["net"].attrs["layer_order"]) == ["layer1", "layer2", "layer10"]
        assert json.loads(f["net"].attrs["imported"])["layers_from"] == "folders"
    assert sorted(["10", "9", "1", "01"], key=natural_key) == ["01", "1", "9", "10"]


def test_metadata_order_then_unlisted_folders_and_chosen_layers(tmp_path, caplog):
    root = write_backend_tree(tmp_path / "m", backend_activations(4))
    (root / "metadata.json").write_text(json.dumps({"layers": ["fc1", "conv1"]}))
    with caplog.at_level(logging.WARNING):
        out = import_npy_layout(root, tmp_path / "a.h5", "net")
    assert "conv2" in caplog.text and "not in metadata.json" in caplog.text
    with h5py.File(out, "r") as f:
        assert json.loads(f["net"].attrs["layer_order"]) == ["fc1", "conv1", "conv2"]
    out = import_npy_layout(root, tmp_path / "b.h5", layers=["conv2", "fc1"])
    with h5py.File(out, "r") as f:
        assert list(f) == ["m"]
        assert json.loads(f["m"].attrs["layer_order"]) == ["conv2", "fc1"]
        assert sorted(f["m/layers"]) == ["conv2", "fc1"]


def test_replicates_first_and_dtypes(tmp_path):
    rng = np.random.default_rng(2)
    root = tmp_path / "reps"
    f64 = {str(i): rng.standard_normal((3, 2, 4)) for i in range(5)}
    ints = {str(i): rng.integers(-1000, 1000, (3, 5)) for i in range(5)}
    flags = {str(i): rng.random((3, 2)) > 0.5 for i in range(5)}
    save_layer(root, "a", f64)
    save_layer(root, "b", ints)
    save_layer(root, "c", flags)
    ids = [str(i) for i in range(5)]
    out = import_npy_layout(root, tmp_path / "r.h5", replicates_first=True)
    with h5py.File(out, "r") as f:
        layers = f["reps/layers"]
        assert f["reps"].attrs["n_replicates"] == 3
        for name, arrays in (("a", f64), ("b", ints), ("c", flags)):
            expected = np.stack([arrays[s].reshape(3, -1).astype(np.float32) for s in ids])
            np.testing.assert_array_equal(layers[name][()], expected)
            assert tuple(layers[name].attrs["original_shape"]) == arrays["0"].shape[1:]
        assert layers["a"].attrs["source_dtype"] == "float64"
    half = import_npy_layout(
        root, tmp_path / "h.h5", options=StorageOptions(dtype="float16", compression="gzip")
    )
    with h5py.File(half, "r") as f:
        dset = f["reps/layers/a"]
        assert dset.dtype == np.float16 and dset.compression == "gzip"
        assert dset.shape == (5, 1, 24)  # one exposure per file without replicates_first
        expected = np.stack([f64[s].reshape(1, -1).astype(np.float32) for s in ids])
        np.testing.assert_array_equal(dset[()], expected.astype(np.float16))


def test_layers_are_streamed_in_blocks(tmp_path, monkeypatch):
    from actpipe.storage.writer import ActivationWriter

    rng = np.random.default_rng(3)
    root = tmp_path / "big"
    save_layer(
        root, "l", {str(i): rng.standard_normal((2, 8)).astype(np.float32) for i in range(40)}
    )
    rows_per_write = []
    original = ActivationWriter.write_rows

    def spy(self, start, jitter, values):
        rows_per_write.extend(len(v) for v in values.values())
        return original(self, start, jitter, values)

    monkeypatch.setattr(ActivationWriter, "write_rows", spy)
    streamed = import_npy_layout(root, tmp_path / "s.h5", block_bytes=16 * 64)
    assert max(rows_per_write) == 16 and sum(rows_per_write) == 40
    whole = import_npy_layout(root, tmp_path / "w.h5")
    with h5py.File(streamed, "r") as a, h5py.File(whole, "r") as b:
        np.testing.assert_array_equal(a["big/layers/l"][()], b["big/layers/l"][()])
        files = read_tree(root, "l")
        expected = np.stack([files[str(i)].reshape(1, -1) for i in range(40)])
        np.testing.assert_array_equal(a["big/layers/l"][()], expected)


# --------------------------------------------------------------------------- bad input


def good_tree(root: Path, n: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for layer in ("conv1", "fc1"):
        save_layer(root, layer, {str(i): rng.standard_normal((1, 3)) for i in range(n)})
    return root


def expect_error(root: Path, tmp_path: Path, match: str, **kwargs) -> None:
    out = tmp_path / "out" / "x.h5"
    with pytest.raises(FormatError, match=match):
        import_npy_layout(root, out, **kwargs)
    assert not out.exists()
    if out.parent.exists():
        assert no_leftovers(out.parent)


def test_folder_without_layers(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    (root / "metadata.txt").write_text("x")
    expect_error(root, tmp_path, r"no layer folders")
    np.save(root / "0.npy", np.zeros(3))  # one layer's folder given instead of its parent
    expect_error(root, tmp_path, r"one layer's folder\? Pass the folder above it")


def test_empty_layer_folder_and_folder_without_npy(tmp_path):
    root = good_tree(tmp_path / "t")
    (root / "conv2").mkdir()
    expect_error(root, tmp_path, r"conv2: layer folder holds no \.npy file")
    (root / "conv2").rmdir()
    (root / "plots").mkdir()
    (root / "plots" / "a.png").write_bytes(b"")
    expect_error(root, tmp_path, r"plots: layer folder holds no \.npy file.*--layer")
    out = import_npy_layout(root, tmp_path / "ok.h5", layers=["conv1", "fc1"])
    assert out.exists()
    (root / "plots" / "a.png").unlink()
    (root / "plots").rmdir()
    (root / "set_02").mkdir()  # the backend's own folders are not layers
    (root / "images").mkdir()
    (root / "images" / "000001.jpg").write_bytes(b"")
    assert import_npy_layout(root, tmp_path / "ok2.h5").exists()


def test_layers_with_different_examples(tmp_path):
    root = good_tree(tmp_path / "t", n=14)
    for i in (3, 12, 13):
        (root / "fc1" / f"{i}.npy").unlink()
    np.save(root / "conv1" / "extra.npy", np.zeros((1, 3)))
    with pytest.raises(FormatError) as info:
        import_npy_layout(root, tmp_path / "x.h5")
    message = str(info.value)
    assert "fc1/ lacks 4 file(s): 3.npy, 12.npy, 13.npy, extra.npy" in message
    assert "conv1/" not in message


def test_different_shapes_within_a_layer(tmp_path):
    root = good_tree(tmp_path / "t")
    np.save(root / "fc1" / "2.npy", np.zeros((1, 4)))
    expect_error(
        root, tmp_path, r"fc1/2\.npy: shape \(1, 4\), but 0\.npy of layer 'fc1' has \(1, 3\)"
    )


@pytest.mark.parametrize(
    "values, match",
    [
        (np.array([{"a": 1}, None], dtype=object), r"Python objects \(pickled data\)"),
        (np.array(["a", "b", "c"]), r"dtype <U1 cannot be imported"),
        (np.array([1 + 2j, 3j, 0j]), r"dtype complex128 cannot be imported"),
        (np.zeros(3, dtype=[("x", "f4")]), r"cannot be imported"),
    ],
)
def test_arrays_that_are_not_numeric(tmp_path, values, match):
    root = good_tree(tmp_path / "t")
    np.save(root / "conv1" / "1.npy", values, allow_pickle=True)
    expect_error(root, tmp_path, match)


def test_unreadable_files(tmp_path):
    root = good_tree(tmp_path / "t")
    (root / "conv1" / "1.npy").write_bytes(b"\x93NUMPY garbage")
    expect_error(root, tmp_path, r"conv1/1\.npy: not a readable \.npy array")
    good_tree(root)
    np.savez(root / "conv1" / "x.npz", a=np.zeros(3))
    (root / "conv1" / "x.npz").rename(root / "conv1" / "1.npy")
    expect_error(root, tmp_path, r"an \.npz archive")
    good_tree(root)
    import pickle

    (root / "fc1" / "2.npy").write_bytes(pickle.dumps(np.zeros(3)))
    expect_error(root, tmp_path, r"pickled data")


def test_empty_arrays_metadata_and_names(tmp_path):
    root = good_tree(tmp_path / "t")
    save_layer(root, "fc1", {str(i): np.zeros((1, 0)) for i in range(4)})
    expect_error(root, tmp_path, r"shape \(1, 0\) holds no values")
    root = good_tree(tmp_path / "u")
    (root / "metadata.json").write_text("{not json")
    expect_error(root, tmp_path, r"metadata\.json: not readable as JSON")
    (root / "metadata.json").write_text(json.dumps({"layers": ["conv1", "conv9"]}))
    expect_error(root, tmp_path, r"lists layer\(s\) \['conv9'\] that have no folder")
    (root / "metadata.json").unlink()
    expect_error(root, tmp_path, r"no layer folder 'conv3'", layers=["conv1", "conv3"])
    expect_error(root, tmp_path, r"cannot name a model", model=".hidden")
    save_layer(root, "reps", {str(i): np.zeros((2, 3)) for i in range(4)})
    expect_error(root, tmp_path, r"same number of replicates", replicates_first=True)


def test_import_command_options(tmp_path, capsys):
    root = good_tree(tmp_path / "t")
    out = tmp_path / "o.h5"
    assert main(["import", str(root), str(out), "--model", "net", "--layer", "fc1"]) == 0
    with h5py.File(out, "r") as f:
        assert list(f) == ["net"] and list(f["net/layers"]) == ["fc1"]
    assert main(["import", str(root), str(out), "--model", "a", "--model", "b"]) == 1
    assert "give one --model name" in capsys.readouterr().err
    assert main(["import", str(root), str(out), "--models-dir", str(tmp_path)]) == 1
    assert "--models-dir applies to HDF5 files" in capsys.readouterr().err
    assert main(["import", str(out), str(tmp_path / "p.h5"), "--replicates-first"]) == 1
    assert "apply to a directory" in capsys.readouterr().err


def test_nonfinite_values_are_kept_and_reported_by_validate(tmp_path):
    root = good_tree(tmp_path / "t")
    values = np.load(root / "fc1" / "2.npy")
    values[0, 1] = np.inf
    np.save(root / "fc1" / "2.npy", values)
    out = import_npy_layout(root, tmp_path / "x.h5")
    with h5py.File(out, "r") as f:
        assert np.isinf(f["t/layers/fc1"][2, 0, 1])
    (problem,) = validate_file(out)
    assert problem.severity == "error" and "first in stimulus '2'" in problem.message
