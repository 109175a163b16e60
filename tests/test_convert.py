"""Import of the older per-stimulus layout and export back to it, value for value."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from actpipe.storage import FormatError, StorageOptions
from actpipe.storage.convert import export_per_stimulus, import_per_stimulus
from actpipe.storage.reader import load_lazy_activations
from actpipe.storage.validate import validate_file
from tests.helpers.files import (
    PROVENANCE,
    old_layout_data,
    random_model,
    write_model_file,
    write_old_layout,
)


def old_datasets(path):
    """Every dataset of a per-stimulus file: {(model, stimulus, layer): array}, plain h5py."""
    out = {}
    with h5py.File(path, "r") as f:
        for model in f:
            for sid in f[model]:
                for layer in f[model][sid]:
                    out[(model, sid, layer)] = f[model][sid][layer][()]
    return out


def test_old_file_imports_and_exports_back_identically(tmp_path):
    data = old_layout_data()
    old = write_old_layout(tmp_path / "model_activations_semantic.h5", data)
    with h5py.File(old, "r") as f:  # the seed's own integrity check
        assert f["ResNet50"]["object_01"]["layer1.0.conv1"][:].shape[0] == 4
    out = tmp_path / "results" / "activations" / "model_activations_semantic.h5"
    files = import_per_stimulus(old, out)
    assert files == {m: out.with_suffix("") / f"{m}.h5" for m in ("ResNet50", "ViT-B-16")}
    for model, stimuli in data.items():
        sids = sorted(stimuli)  # the order the older file iterates in
        with h5py.File(files[model], "r") as f:
            group = f[model]
            assert group["stimulus_ids"].asstr()[()].tolist() == sids
            for layer in stimuli[sids[0]]:
                expected = np.stack([stimuli[s][layer] for s in sids])
                np.testing.assert_array_equal(group["layers"][layer][()], expected)
                assert group["layers"][layer].dtype == np.float32
            assert np.isnan(group["jitter"][()]).all()
            assert group.attrs["imported_from"] == str(old)
        assert [p for p in validate_file(files[model]) if p.severity == "error"] == []
    with load_lazy_activations(out) as acts:  # the joined file
        assert list(acts) == ["ResNet50", "ViT-B-16"]
        np.testing.assert_array_equal(
            acts["ResNet50"]["object_03"]["layer4.2.conv3"],
            data["ResNet50"]["object_03"]["layer4.2.conv3"],
        )
    back = export_per_stimulus(out, tmp_path / "back.h5")
    original, exported = old_datasets(old), old_datasets(back)
    assert sorted(original) == sorted(exported)
    for key, values in original.items():
        assert exported[key].dtype == values.dtype and exported[key].shape == values.shape
        np.testing.assert_array_equal(exported[key], values)


def test_actpipe_file_round_trips_through_the_older_layout(tmp_path):
    ids, layers, jitter = random_model(9, 2, {"conv": 6, "head.fc": 2}, seed=3)
    src = write_model_file(tmp_path / "m.h5", "net", ids, layers, jitter)
    exported = export_per_stimulus(src, tmp_path / "old.h5")
    with h5py.File(exported, "r") as f:  # what the older tools read
        assert list(f["net"].keys()) == ids  # row order kept, not sorted
        assert list(f["net"][ids[0]].keys()) == ["conv", "head.fc"]
        np.testing.assert_array_equal(f["net"][ids[4]]["conv"][:], layers["conv"][4])
    back = import_per_stimulus(
        exported, tmp_path / "back.h5", options=StorageOptions(compression="gzip")
    )["net"]
    with h5py.File(src, "r") as a, h5py.File(back, "r") as b:
        ga, gb = a["net"], b["net"]
        assert gb["stimulus_ids"].asstr()[()].tolist() == ids
        np.testing.assert_array_equal(gb["jitter"][()], ga["jitter"][()])
        for name in layers:
            np.testing.assert_array_equal(gb["layers"][name][()], ga["layers"][name][()])
            assert gb["layers"][name].compression == "gzip"
            for key, value in ga["layers"][name].attrs.items():
                np.testing.assert_array_equal(gb["layers"][name].attrs[key], value)
        for key in PROVENANCE:
            assert gb.attrs[key] == ga.attrs[key]
    assert validate_file(back) == []


def test_one_model_import_writes_a_per_model_file_with_storage_options(tmp_path):
    data = {"ResNet50": old_layout_data()["ResNet50"]}
    old = write_old_layout(tmp_path / "old.h5", data)
    out = import_per_stimulus(old, tmp_path / "r.h5", options=StorageOptions(dtype="float16"))
    assert out == {"ResNet50": tmp_path / "r.h5"}
    with h5py.File(tmp_path / "r.h5", "r") as f:
        values = f["ResNet50/layers/layer1.0.conv1"][()]
        assert values.dtype == np.float16
        expected = np.stack(
            [data["ResNet50"][s]["layer1.0.conv1"] for s in sorted(data["ResNet50"])]
        )
        np.testing.assert_array_equal(values, expected.astype(np.float16))
        assert tuple(f["ResNet50/layers/layer1.0.conv1"].attrs["original_shape"]) == (64,)


def test_import_refuses_inconsistent_or_new_layout_files(tmp_path):
    data = old_layout_data()
    del data["ResNet50"]["object_04"]["layer4.2.conv3"]
    old = write_old_layout(tmp_path / "bad.h5", data)
    with pytest.raises(FormatError, match=r"stimulus 'object_04' has layers \['layer1.0.conv1'\]"):
        import_per_stimulus(old, tmp_path / "out.h5", ["ResNet50"])
    assert not (tmp_path / "out.h5").exists() and not list(tmp_path.glob(".*partial"))
    data = old_layout_data()
    data["ViT-B-16"]["object_02"]["blocks.5.attn"] = np.zeros((3, 48), np.float32)
    old = write_old_layout(tmp_path / "bad2.h5", data)
    with pytest.raises(FormatError, match=r"object_02/blocks.5.attn has shape \(3, 48\)"):
        import_per_stimulus(old, tmp_path / "out2.h5", ["ViT-B-16"])
    ids, layers, _ = random_model(3, 1, {"a": 2})
    new = write_model_file(tmp_path / "new.h5", "m", ids, layers)
    with pytest.raises(FormatError, match="already in actpipe's layer-major layout"):
        import_per_stimulus(new, tmp_path / "x.h5")
    with pytest.raises(KeyError, match="no model 'resnet50'.*ResNet50"):
        import_per_stimulus(tmp_path / "bad.h5", tmp_path / "x.h5", ["resnet50"])
