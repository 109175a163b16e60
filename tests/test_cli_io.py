"""The ``actpipe`` commands inspect, validate, export, import and append."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from actpipe.cli import main
from actpipe.storage import StorageOptions, join_activations
from actpipe.storage.reader import read_layer
from tests.helpers.files import old_layout_data, random_model, write_model_file, write_old_layout


@pytest.fixture
def files(tmp_path):
    a = random_model(6, 2, {"conv": 8, "fc": 3}, seed=1)
    pa = write_model_file(
        tmp_path / "set" / "a.h5",
        "alpha",
        *a,
        options=StorageOptions(compression="gzip", compression_level=3),
    )
    b = random_model(4, 2, {"x": 2}, seed=2)
    pb = write_model_file(tmp_path / "set" / "b.h5", "beta", *b)
    joined = join_activations(tmp_path / "joined.h5", {"alpha": pa, "beta": pb})
    return {"a": pa, "b": pb, "joined": joined, "data_a": a, "data_b": b}


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_inspect_shows_models_layers_and_provenance(files, capsys):
    code, out, _ = run(capsys, "inspect", files["joined"], "--show-layers")
    assert code == 0
    assert "joined file, layer-major layout, format_version 2" in out
    assert "model alpha (linked: set/a.h5)" in out and "model beta (linked: set/b.h5)" in out
    assert "stimuli: 6  replicates: 2  layers: 2" in out
    with h5py.File(files["a"], "r") as f:
        size = f["alpha/layers/conv"].id.get_storage_size()
    conv = next(line for line in out.splitlines() if line.strip().startswith("conv "))
    assert conv.split()[1:5] == ["6x2x8", "float32", "6x2x8", "gzip"]
    assert conv.split()[5] == "3"
    assert f"{size} B" in conv or f"{size / 1024:.1f} KiB" in conv
    assert 'weights: {"kind": "random", "seed": 0}' in out and "seed: 0" in out
    code, out, _ = run(capsys, "inspect", files["joined"], "--model", "beta")
    assert "model beta" in out and "model alpha" not in out
    assert "layers: x  (--show-layers" in out
    code, out, _ = run(capsys, "inspect", files["a"], "--json")
    info = json.loads(out)
    assert info["models"][0]["n_stimuli"] == 6 and info["models"][0]["attrs"]["seed"] == 0
    code, _, err = run(capsys, "inspect", files["joined"], "--model", "alfa")
    assert code == 1 and "no model 'alfa'; closest models: alpha" in err


def test_inspect_reports_a_broken_link(files, capsys):
    files["b"].unlink()
    code, out, _ = run(capsys, "inspect", files["joined"])
    assert code == 1 and "model beta: ERROR" in out and "set/b.h5" in out


def test_validate_accepts_good_files_and_lists_problems(files, tmp_path, capsys):
    code, out, _ = run(capsys, "validate", files["joined"], files["a"])
    assert code == 0 and out.count(": OK") == 2
    bad = tmp_path / "bad.h5"
    bad.write_bytes(files["a"].read_bytes())
    with h5py.File(bad, "r+") as f:
        group = f["alpha"]
        ids = group["stimulus_ids"]
        ids[3] = ids[0]
        group["layers/fc"][2, 1, 0] = np.nan
        group["layers/conv"][4, 0, :2] = np.inf
        del group.attrs["weights"]
        group["layers"].create_dataset("short", data=np.zeros((5, 2, 1), np.float32))
        group["layers"].create_dataset("reps", data=np.zeros((6, 3, 1), np.float32))
    code, out, _ = run(capsys, "validate", bad)
    assert code == 1 and "INVALID" in out
    sid0 = files["data_a"][0][0]
    expected = [
        f"1 id(s) repeated: {sid0!r}",
        "alpha/layers/fc: 1 NaN or inf value(s), first in stimulus",
        "alpha/layers/conv: 2 NaN or inf value(s)",
        "attribute 'weights' missing",
        "alpha/layers/short: 5 rows for 6 stimulus ids",
        "alpha/layers/reps: 3 replicates; the model has 2",
        "attribute layer_order",
    ]
    for text in expected:
        assert text in out, text
    old = write_old_layout(tmp_path / "old.h5", old_layout_data())
    code, out, _ = run(capsys, "validate", old)
    assert code == 0 and "warning" in out and "actpipe import" in out
    code, out, _ = run(capsys, "validate", "--strict", old)
    assert code == 1
    (tmp_path / "empty.h5").write_bytes(b"")
    code, out, _ = run(capsys, "validate", tmp_path / "empty.h5")
    assert code == 1 and "not an HDF5 file (it is empty)" in out


def test_export_import_and_append_commands(files, tmp_path, capsys):
    code, out, _ = run(
        capsys, "export", files["joined"], "--layout", "per-stimulus", tmp_path / "old.h5"
    )
    assert code == 0
    with h5py.File(tmp_path / "old.h5", "r") as f:
        sid = files["data_b"][0][2]
        np.testing.assert_array_equal(f["beta"][sid]["x"][:], files["data_b"][1]["x"][2])
    code, out, _ = run(
        capsys,
        "import",
        tmp_path / "old.h5",
        tmp_path / "new.h5",
        "--compression",
        "lzf",
        "--models-dir",
        tmp_path / "per_model",
    )
    assert code == 0 and "wrote" in out
    for model, key in (("alpha", "data_a"), ("beta", "data_b")):
        for layer, values in files[key][1].items():
            np.testing.assert_array_equal(read_layer(tmp_path / "new.h5", model, layer), values)
    with h5py.File(tmp_path / "per_model" / "alpha.h5", "r") as f:
        assert f["alpha/layers/conv"].compression == "lzf"
    code, _, err = run(
        capsys,
        "export",
        files["a"],
        "--layout",
        "per-stimulus",
        tmp_path / "x.h5",
        "--model",
        "gamma",
    )
    assert code == 1 and "no model 'gamma'" in err and not (tmp_path / "x.h5").exists()
    extra = random_model(2, 2, {"x": 2}, seed=8)
    pe = write_model_file(tmp_path / "extra.h5", "beta", ["e0", "e1"], *extra[1:])
    code, out, _ = run(capsys, "append", files["b"], pe)
    assert code == 0 and "beta: 2 stimuli appended" in out
    np.testing.assert_array_equal(
        read_layer(files["joined"], "beta", "x", ["e1"]), extra[1]["x"][1:]
    )


def test_console_script_reads_with_file_locking_off(files):
    script = Path(sys.executable).with_name("actpipe")
    env = {**os.environ, "HDF5_USE_FILE_LOCKING": "FALSE"}
    proc = subprocess.run(
        [str(script), "inspect", str(files["a"])],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "model alpha" in proc.stdout and "stimuli: 6" in proc.stdout
