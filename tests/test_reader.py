"""The reading API: lazy nested mapping, layer-major views, caching, errors, file kinds."""

from __future__ import annotations

import hashlib
import os

import h5py
import numpy as np
import pytest

import actpipe
from actpipe.storage import FormatError, join_activations
from actpipe.storage import blocks as blocks_mod
from actpipe.storage import lazy as lazy_mod
from actpipe.storage.reader import (
    get_activation_shape,
    get_available_images,
    get_available_layers,
    get_available_models,
    iter_layer,
    load_lazy_activations,
    load_model_activations_lazy,
    read_layer,
)
from tests.helpers.files import old_layout_data, random_model, write_model_file, write_old_layout

DIMS = {"conv1": 12, "block.2": 5, "fc": 3}


@pytest.fixture
def model_file(tmp_path):
    ids, layers, jitter = random_model(10, 3, DIMS)
    path = write_model_file(tmp_path / "m.h5", "tiny", ids, layers, jitter)
    return path, ids, layers, jitter


def h5_rows(path, model, layer):
    with h5py.File(path, "r") as f:
        return f[f"{model}/layers/{layer}"][()], f[f"{model}/stimulus_ids"].asstr()[()].tolist()


def test_nested_mapping_matches_direct_reads(model_file):
    path, ids, layers, _ = model_file
    acts = load_lazy_activations(path)
    assert list(acts) == ["tiny"] and len(acts) == 1 and "tiny" in acts
    model = acts["tiny"]
    assert list(model.keys()) == ids and len(model) == 10 and ids[3] in model
    assert list(model[ids[0]]) == list(DIMS) and len(model[ids[0]]) == 3
    for layer in DIMS:
        direct, direct_ids = h5_rows(path, "tiny", layer)
        assert direct_ids == ids
        for row, sid in enumerate(model):
            value = acts["tiny"][sid][layer]
            assert value.shape == (3, DIMS[layer]) and value.dtype == np.float32
            np.testing.assert_array_equal(value, direct[row])
    items = dict(model[ids[2]].items())
    np.testing.assert_array_equal(items["fc"], layers["fc"][2])
    acts.close()


def test_nothing_is_read_until_indexed(model_file, monkeypatch):
    path, ids, _, _ = model_file
    calls = []
    for module in (blocks_mod, lazy_mod):
        for name in ("read_one", "read_block"):
            original = getattr(module, name, None)
            if original is not None:
                monkeypatch.setattr(
                    module, name, lambda *a, _o=original, _n=name: calls.append(_n) or _o(*a)
                )
    with load_lazy_activations(path) as acts:
        for model in acts:
            for sid in acts[model]:
                list(acts[model][sid].keys())
        view = acts["tiny"].layer("conv1")
        assert view.shape == (10, 3, 12) and acts["tiny"].shape("fc") == (10, 3, 3)
        assert calls == [] and acts._state.files.files == {}
        acts["tiny"][ids[1]]["fc"]
        assert calls == ["read_one"]
        assert len(acts._state.files.files) == 1
    assert acts._state.files.files == {}


def test_cache_small_arrays_and_clear_at_every_level(model_file, monkeypatch):
    path, ids, layers, _ = model_file
    reads = []
    original = lazy_mod.read_one
    monkeypatch.setattr(lazy_mod, "read_one", lambda *a: reads.append(a[2:]) or original(*a))
    acts = load_lazy_activations(path)
    stim = acts["tiny"][ids[0]]
    first = stim["conv1"]
    first[:] = 0  # callers may change what they get; the cache keeps its own copy
    np.testing.assert_array_equal(stim["conv1"], layers["conv1"][0])
    assert len(reads) == 1
    stim.clear_cache()
    stim["conv1"]
    acts["tiny"][ids[1]]["fc"]
    assert len(reads) == 3
    acts["tiny"].clear_cache()
    acts["tiny"][ids[1]]["fc"]
    acts.clear_cache()
    acts["tiny"][ids[1]]["fc"]
    assert len(reads) == 5
    # Over the size limit: never cached.
    small = load_lazy_activations(path, cache_bytes=3 * 12 * 4)
    small["tiny"][ids[0]]["conv1"], small["tiny"][ids[0]]["conv1"]
    small["tiny"][ids[0]]["fc"], small["tiny"][ids[0]]["fc"]
    assert [r[0] for r in reads[5:]] == ["conv1", "conv1", "fc"]
    assert lazy_mod.DEFAULT_CACHE_BYTES == 10 * 1024 * 1024
    acts.close()
    with pytest.raises(ValueError, match="closed"):
        acts["tiny"][ids[0]]["fc"]


def test_cache_total_is_bounded():
    cache = blocks_mod.Cache(item_bytes=100, limit=160)
    for i in range(4):
        assert cache.put(("m", str(i), "l"), np.zeros(10, np.float32))  # 40 bytes each
    assert cache.nbytes == 160
    cache.put(("m", "4", "l"), np.zeros(10, np.float32))
    assert cache.get(("m", "0", "l")) is None and cache.nbytes == 160
    assert not cache.put(("m", "big", "l"), np.zeros(30, np.float32))


def test_layer_views_select_average_and_stream(model_file):
    path, ids, layers, _ = model_file
    full = layers["conv1"]
    with load_lazy_activations(path) as acts:
        view = acts["tiny"].layer("conv1")
        np.testing.assert_array_equal(view.read(), full)
        np.testing.assert_array_equal(np.asarray(view), full)
        picked = [ids[7], ids[2], ids[7], ids[0]]
        np.testing.assert_array_equal(view.read(picked), full[[7, 2, 7, 0]])
        np.testing.assert_array_equal(view[picked], full[[7, 2, 7, 0]])
        np.testing.assert_array_equal(view[ids[4]], full[4])
        np.testing.assert_array_equal(view[-1], full[-1])
        np.testing.assert_array_equal(view[2:9:3], full[2:9:3])
        mask = np.arange(10) % 3 == 0
        np.testing.assert_array_equal(view[mask, 1], full[mask, 1])
        np.testing.assert_array_equal(view[:, :, 4], full[:, :, 4])
        np.testing.assert_array_equal(view.read(rows=[5, 1]), full[[5, 1]])
        mean = view.replicate_mean()
        assert mean.shape == (10, 12) and mean.dtype == np.float32
        np.testing.assert_allclose(mean.read(), full.astype(np.float64).mean(axis=1), rtol=1e-6)
        assert view.read(picked[:2], dtype=np.float64).dtype == np.float64
        row_bytes = 3 * 12 * 4
        blocks = list(view.blocks(block_bytes=3 * row_bytes))
        assert [len(b) for _, b in blocks] == [3, 3, 3, 1]
        assert [s for i, _ in blocks for s in i] == ids
        np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), full)
        chosen = ids[::-2]
        got = list(view.replicate_mean().blocks(chosen, block_bytes=2 * row_bytes))
        assert [s for i, _ in got for s in i] == chosen
        rows = [ids.index(s) for s in chosen]
        np.testing.assert_allclose(
            np.concatenate([b for _, b in got]), full[rows].mean(axis=1), rtol=1e-6
        )
        with pytest.raises(KeyError, match="no stimulus 'nope'"):
            view[["nope", ids[0]]]
        with pytest.raises(IndexError):
            view[10]


def test_read_layer_and_iter_layer_for_analysis(model_file):
    path, ids, layers, _ = model_file
    ref = layers["block.2"].astype(np.float64).mean(axis=1)
    got = read_layer(path, "tiny", "block.2", replicate_mean=True, dtype=np.float64)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(read_layer(path, "tiny", "fc", ids[::-1]), layers["fc"][::-1])
    blocks = list(iter_layer(path, "tiny", "block.2", block_bytes=4 * 3 * 5 * 4))
    assert all(len(b) <= 4 for _, b in blocks) and len(blocks) == 3
    assert [s for i, _ in blocks for s in i] == ids
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), layers["block.2"])
    with pytest.raises(KeyError, match="no layer 'blok.2'.*block.2"):
        iter_layer(path, "tiny", "blok.2")  # raises at the call, before iterating
    with pytest.raises(KeyError, match="no stimulus"):
        iter_layer(path, "tiny", "fc", ["missing"])


def test_inspection_functions_and_top_level_exports(model_file):
    path, ids, _, _ = model_file
    assert actpipe.load_lazy_activations is load_lazy_activations
    assert actpipe.get_available_models(path) == ["tiny"] == get_available_models(path)
    assert get_available_images(path, "tiny") == ids
    assert get_available_layers(path, "tiny") == list(DIMS)
    assert get_activation_shape(path, "tiny") == (3, 12)
    assert get_activation_shape(path, "tiny", "fc") == (3, 3)
    single = load_model_activations_lazy(path, "tiny")
    assert list(single) == ["tiny"] and single["tiny"].n_replicates == 3
    assert single["tiny"].attrs["seed"] == 0 and single["tiny"].attrs["model"]["name"] == "tiny"
    np.testing.assert_array_equal(single["tiny"].jitter(), model_file[3])


def test_errors_name_the_file_and_what_exists(model_file, tmp_path):
    path, ids, _, _ = model_file
    with pytest.raises(KeyError, match=r"m.h5: no model 'tiyn'; closest models: tiny"):
        load_lazy_activations(path)["tiyn"]
    with pytest.raises(KeyError, match="no model 'x'"):
        load_model_activations_lazy(path, "x")
    with pytest.raises(KeyError, match="no layer 'conv2'.*conv1"):
        get_activation_shape(path, "tiny", "conv2")
    with pytest.raises(KeyError, match=f"no stimulus 'stim_0x'.*{ids[0][:5]}"):
        load_lazy_activations(path)["tiny"]["stim_0x"]
    with pytest.raises(FileNotFoundError, match="closest files there: m.h5"):
        get_available_models(tmp_path / "n.h5")
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(FormatError, match="not an HDF5 file"):
        get_available_models(tmp_path / "text.h5")
    with h5py.File(tmp_path / "future.h5", "w") as f:
        f.attrs["format_version"] = 99
        f.attrs["layout"] = "layer-major"
    with pytest.raises(FormatError, match="newer than this actpipe reads"):
        load_lazy_activations(tmp_path / "future.h5")


def test_joined_file_and_older_layout_read_the_same_way(model_file, tmp_path):
    path, ids, layers, _ = model_file
    ids2, layers2, _ = random_model(4, 2, {"a": 2}, seed=5)
    other = write_model_file(tmp_path / "set" / "other.h5", "other", ids2, layers2)
    joined = join_activations(tmp_path / "joined.h5", {"tiny": path, "other": other})
    with load_lazy_activations(joined) as acts:
        assert list(acts) == ["tiny", "other"]
        np.testing.assert_array_equal(acts["other"][ids2[3]]["a"], layers2["a"][3])
        np.testing.assert_array_equal(acts["tiny"].layer("fc").read(), layers["fc"])
        assert acts["other"].source_path == other.resolve()
    assert get_available_images(joined, "other") == ids2
    data = old_layout_data()
    old = write_old_layout(tmp_path / "old.h5", data)
    with load_lazy_activations(old) as acts:
        assert list(acts) == ["ResNet50", "ViT-B-16"] and acts["ResNet50"].layout == "per-stimulus"
        sids = sorted(data["ResNet50"])
        assert list(acts["ResNet50"]) == sids
        np.testing.assert_array_equal(
            acts["ResNet50"]["object_01"]["layer1.0.conv1"],
            data["ResNet50"]["object_01"]["layer1.0.conv1"],
        )
        stacked = np.stack([data["ViT-B-16"][s]["blocks.5.attn"] for s in sids])
        np.testing.assert_array_equal(acts["ViT-B-16"].layer("blocks.5.attn").read(), stacked)
        np.testing.assert_array_equal(
            acts["ViT-B-16"].layer("blocks.5.attn")[["object_03", "object_01"]], stacked[[2, 0]]
        )
    assert get_activation_shape(old, "ResNet50") == (4, 64)


def test_reading_is_read_only_and_leaves_the_file_unchanged(model_file, monkeypatch):
    path, ids, layers, _ = model_file
    monkeypatch.setenv("HDF5_USE_FILE_LOCKING", "FALSE")
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    os.chmod(path, 0o444)
    try:
        with load_lazy_activations(path) as acts:
            np.testing.assert_array_equal(acts["tiny"][ids[5]]["conv1"], layers["conv1"][5])
            assert acts._state.files.files[path.resolve()].mode == "r"
        assert read_layer(path, "tiny", "fc").shape == (10, 3, 3)
    finally:
        os.chmod(path, 0o644)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_float16_layers_and_uncommitted_rows(tmp_path):
    from actpipe.storage import StorageOptions

    ids, layers, _ = random_model(6, 2, {"x": 4}, dtype=np.float16)
    path = write_model_file(
        tmp_path / "h.h5", "m", ids, layers, options=StorageOptions(dtype="float16")
    )
    with load_lazy_activations(path) as acts:
        view = acts["m"].layer("x")
        assert view.dtype == np.float16 and view.replicate_mean().dtype == np.float32
        np.testing.assert_array_equal(view.read(), layers["x"])
    with h5py.File(path, "r+") as f:  # rows written by an append that never committed
        f["m/layers/x"].resize(8, axis=0)
    assert read_layer(path, "m", "x").shape == (6, 2, 4)
