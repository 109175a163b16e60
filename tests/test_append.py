"""Adding models and stimuli to existing files without rewriting them; interruptions."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from actpipe.storage import FormatError, StorageOptions, join_activations, merge_shards
from actpipe.storage import append as append_mod
from actpipe.storage.append import append_file, append_model, extend_model
from actpipe.storage.reader import get_available_models, load_lazy_activations, read_layer
from actpipe.storage.validate import validate_file
from tests.helpers.files import random_model, write_model_file


def dataset_bytes(path, name):
    with h5py.File(path, "r") as f:
        return f[name][()].tobytes()


@pytest.fixture
def two_models(tmp_path):
    a = random_model(8, 2, {"l1": 5, "l2": 3}, seed=1)
    b = random_model(5, 2, {"x": 4}, seed=2)
    pa = write_model_file(
        tmp_path / "a.h5",
        "alpha",
        *a,
        options=StorageOptions(compression="gzip", compression_level=2),
    )
    pb = write_model_file(tmp_path / "b.h5", "beta", *b, options=StorageOptions(compression="lzf"))
    return pa, a, pb, b


def test_append_model_copies_into_a_data_file(two_models):
    pa, a, pb, b = two_models
    before = dataset_bytes(pa, "alpha/layers/l1")
    append_model(pa, pb)
    assert get_available_models(pa) == ["alpha", "beta"]
    assert dataset_bytes(pa, "alpha/layers/l1") == before
    with h5py.File(pa, "r") as f, h5py.File(pb, "r") as src:
        copied = f["beta/layers/x"]
        np.testing.assert_array_equal(copied[()], b[1]["x"])
        assert copied.compression == "lzf" and copied.chunks == src["beta/layers/x"].chunks
        assert f["beta/stimulus_ids"].asstr()[()].tolist() == b[0]
        np.testing.assert_array_equal(f["beta/jitter"][()], b[2])
        assert dict(f["beta"].attrs).keys() == dict(src["beta"].attrs).keys()
    assert validate_file(pa) == []
    with pytest.raises(ValueError, match="already has model 'beta'"):
        append_model(pa, pb)


def test_append_model_to_a_joined_file_adds_a_link(two_models, tmp_path):
    pa, a, pb, b = two_models
    joined = join_activations(tmp_path / "set.h5", {"alpha": pa})
    append_model(joined, pb)
    with h5py.File(joined, "r") as f:
        assert isinstance(f.get("beta", getlink=True), h5py.ExternalLink)
    with load_lazy_activations(joined) as acts:
        assert list(acts) == ["alpha", "beta"]
        np.testing.assert_array_equal(acts["beta"].layer("x").read(), b[1]["x"])


def test_extend_model_appends_rows_and_keeps_existing_ones(two_models):
    pa, (ids, layers, jitter), _, _ = two_models
    new = random_model(3, 2, {"l1": 5, "l2": 3}, seed=9)
    new_ids = [f"new_{i}" for i in range(3)]
    before = {name: dataset_bytes(pa, f"alpha/layers/{name}") for name in layers}
    extend_model(pa, "alpha", new_ids, new[1], new[2])
    with h5py.File(pa, "r") as f:
        assert f["alpha/stimulus_ids"].asstr()[()].tolist() == ids + new_ids
        assert f["alpha"].attrs["n_stimuli"] == 11
        for name in layers:
            data = f[f"alpha/layers/{name}"]
            assert data[:8].tobytes() == before[name]
            np.testing.assert_array_equal(data[8:], new[1][name])
        np.testing.assert_array_equal(f["alpha/jitter"][8:], new[2])
    assert validate_file(pa) == []
    with pytest.raises(ValueError, match="already present or repeated: 'new_1'"):
        extend_model(pa, "alpha", ["new_1", "z"], {n: v[:2] for n, v in new[1].items()})
    with pytest.raises(ValueError, match=r"too few\) new rows for layers \['l2'\]"):
        extend_model(pa, "alpha", ["z"], {"l1": new[1]["l1"][:1]})
    assert read_layer(pa, "alpha", "l1").shape == (11, 2, 5)
    assert validate_file(pa)[0].message.startswith("1 row(s) past the last stimulus id")


def test_float16_target_and_joined_target(tmp_path):
    ids, layers, _ = random_model(4, 1, {"h": 3}, dtype=np.float16)
    path = write_model_file(
        tmp_path / "sets" / "h.h5", "half", ids, layers, options=StorageOptions(dtype="float16")
    )
    joined = join_activations(tmp_path / "joined.h5", {"half": path})
    extra = np.array([[[0.1, 70000.0, 2.0]]], np.float32)
    with pytest.raises(OverflowError, match="float16"):
        extend_model(joined, "half", ["big"], {"h": extra})
    extra[0, 0, 1] = 3.0
    assert extend_model(joined, "half", ["ok"], {"h": extra}) == path.resolve()
    np.testing.assert_array_equal(read_layer(joined, "half", "h", ["ok"]), extra.astype(np.float16))


def test_interrupted_extension_leaves_the_file_readable(two_models, monkeypatch):
    pa, (ids, layers, _), _, _ = two_models
    new = random_model(2, 2, {"l1": 5, "l2": 3}, seed=4)[1]

    def killed(self, *args):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(append_mod._Extension, "commit", killed)
        with pytest.raises(KeyboardInterrupt):
            extend_model(pa, "alpha", ["p", "q"], new)
    with h5py.File(pa, "r") as f:
        assert f["alpha/layers/l1"].shape[0] == 10  # written, not committed
    with load_lazy_activations(pa) as acts:
        assert list(acts["alpha"]) == ids
        np.testing.assert_array_equal(acts["alpha"].layer("l1").read(), layers["l1"])
    problems = validate_file(pa)
    assert problems and all("interrupted append" in p.message for p in problems)
    extend_model(pa, "alpha", ["r"], {k: v[:1] for k, v in new.items()})
    np.testing.assert_array_equal(read_layer(pa, "alpha", "l2")[8:], new["l2"][:1])
    assert validate_file(pa) == []


def test_interrupted_model_append_is_hidden_then_replaced(two_models, monkeypatch):
    pa, _, pb, b = two_models

    def killed(src, f, name, block_bytes):
        f.create_group(name).create_dataset("half-written", data=[1])
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(append_mod, "_copy_model", killed)
        with pytest.raises(KeyboardInterrupt):
            append_model(pa, pb)
    assert get_available_models(pa) == ["alpha"]
    assert [p.severity for p in validate_file(pa)] == ["warning"]
    append_model(pa, pb)
    with h5py.File(pa, "r") as f:
        assert sorted(f.keys()) == ["alpha", "beta"]
    assert validate_file(pa) == []


def test_copy_mode_and_append_file(two_models, tmp_path):
    pa, a, pb, b = two_models
    more = random_model(2, 2, {"x": 4}, seed=7)
    more_ids = ["m0", "m1"]
    pm = write_model_file(tmp_path / "more.h5", "beta", more_ids, more[1], more[2])
    inode = pa.stat().st_ino
    lines = append_file(pa, pb, copy=True)
    assert lines == ["beta: added (5 stimuli)"] and pa.stat().st_ino != inode
    assert append_file(pa, pm) == ["beta: 2 stimuli appended"]
    np.testing.assert_array_equal(
        read_layer(pa, "beta", "x"), np.concatenate([b[1]["x"], more[1]["x"]])
    )
    with load_lazy_activations(pa) as acts:
        assert acts["beta"].stimulus_ids == b[0] + more_ids
        np.testing.assert_array_equal(acts["beta"].jitter()[5:], more[2])
    assert validate_file(pa) == []


def test_virtual_layers_cannot_grow(tmp_path):
    parts = [random_model(3, 1, {"v": 2}, seed=s) for s in (1, 2)]
    shards = [
        write_model_file(tmp_path / f"shard{i}.h5", "m", [f"{i}_{s}" for s in p[0]], p[1])
        for i, p in enumerate(parts)
    ]
    merged = merge_shards(shards, tmp_path / "m.h5", "m")
    assert validate_file(merged) == []
    before = merged.read_bytes()
    with pytest.raises(FormatError, match="cannot grow"):
        extend_model(merged, "m", ["n"], {"v": np.zeros((1, 1, 2), np.float32)})
    assert merged.read_bytes() == before
    # A merged file can still be copied whole into another file as a model.
    other = write_model_file(tmp_path / "o.h5", "o", *random_model(2, 1, {"w": 1})[:2])
    append_model(other, merged)
    np.testing.assert_array_equal(
        read_layer(other, "m", "v"), np.concatenate([p[1]["v"] for p in parts])
    )
