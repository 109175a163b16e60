"""Sharded extraction equals unsharded extraction; a killed extraction resumes exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest

from actpipe.extraction import ExtractionOptions, extract_activations
from actpipe.models import ModelSpec
from actpipe.stimuli import materialise_stimuli
from actpipe.storage import merge_shards
from actpipe.storage.writer import partial_path, progress_path
from tests.helpers.workflow import run_snakemake, tiny_config, write_config

BLOCK = {
    "source": "torchvision",
    "name": "resnet18",
    "weights": "random",
    "layers": ["layer1", {"name": "layer4", "reduce": "mean"}, "avgpool"],
    "preprocess": {"preset": "imagenet", "size": 32, "resize": 32},
    "batch_size": 4,
}
EXTRACTION = {
    "n_replicates": 2,
    "seed": 0,
    "progress": False,
    "jitter": {"translate": 2, "rotate": 5},
}


def read_all(path, model):
    with h5py.File(path, "r") as f:
        group = f[model]
        out = {name: d[()] for name, d in group["layers"].items()}
        out["__ids"] = np.asarray([s.decode() for s in group["stimulus_ids"][()]])
        out["__jitter"] = group["jitter"][()]
    return out


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        assert a[key].tobytes() == b[key].tobytes(), key


@pytest.fixture(scope="module")
def stimuli(tmp_path_factory):
    return materialise_stimuli(
        {
            "source": "gratings",
            "size": 32,
            "orientations": 6,
            "phases": 2,
            "spatial_frequencies": [2, 4],
        },
        tmp_path_factory.mktemp("s") / "g",
    )


def test_merged_shards_equal_one_extraction(stimuli, tmp_path):
    spec = ModelSpec.from_config("resnet18", BLOCK)
    options = ExtractionOptions.from_config(EXTRACTION)
    whole = extract_activations(spec, stimuli, tmp_path / "whole.h5", options)
    shard_files = []
    for i, start in enumerate(range(0, len(stimuli), 10)):
        shard_files.append(
            extract_activations(
                spec, stimuli.subset(start, start + 10), tmp_path / "shards" / f"s{i}.h5", options
            )
        )
    merged = merge_shards(shard_files, tmp_path / "merged.h5", "resnet18")
    assert_same(read_all(whole, "resnet18"), read_all(merged, "resnet18"))
    with h5py.File(merged, "r") as f:
        assert f["resnet18/layers/layer1"].is_virtual
        assert os.path.getsize(merged) < 100_000  # no copy of the layers
        assert json.loads(f["resnet18"].attrs["shards"]) == [
            "shards/s0.h5",
            "shards/s1.h5",
            "shards/s2.h5",
        ]


@pytest.mark.workflow
def test_sharded_workflow_gives_identical_arrays(tmp_path):
    config = tiny_config()
    config["stimuli"] = {"gratings": config["stimuli"]["gratings"]}
    config["models"] = {"resnet18": config["models"]["resnet18"]}
    plain, sharded = tmp_path / "plain", tmp_path / "sharded"
    write_config(plain, config)
    config["stimuli"]["gratings"]["shard_size"] = 4
    write_config(sharded, config)
    run_snakemake(plain, "--cores", "2")
    run_snakemake(sharded, "--cores", "2")
    assert len(list((sharded / "results/activations/gratings/shards/resnet18").glob("*.h5"))) == 2
    for name in ("gratings/resnet18.h5", "model_activations_gratings.h5"):
        assert_same(
            read_all(plain / "results/activations" / name, "resnet18"),
            read_all(sharded / "results/activations" / name, "resnet18"),
        )
    a = json.loads((plain / "results/clusters/gratings/resnet18/kmeans_k3/paths.json").read_text())
    b = json.loads(
        (sharded / "results/clusters/gratings/resnet18/kmeans_k3/paths.json").read_text()
    )
    assert a == b


SLOW_EXTRACTION = """
import sys, time
import actpipe.extraction.torch_capture as torch_capture
from actpipe.extraction import ExtractionOptions, extract_activations
from actpipe.models import ModelSpec
from actpipe.stimuli import load_stimulus_folder

original = torch_capture.TorchCapture.run
def slow_run(self, inputs, buffers=None):
    time.sleep(0.4)
    return original(self, inputs, buffers)
torch_capture.TorchCapture.run = slow_run
spec = ModelSpec.from_config("resnet18", {block})
options = ExtractionOptions.from_config({extraction})
extract_activations(spec, load_stimulus_folder(sys.argv[1]), sys.argv[2], options)
"""


def test_killed_extraction_resumes_from_the_last_batch(stimuli, tmp_path, caplog):
    spec = ModelSpec.from_config("resnet18", BLOCK)
    extraction = {**EXTRACTION, "checkpoint_seconds": 0}
    reference = extract_activations(
        spec, stimuli, tmp_path / "reference.h5", ExtractionOptions.from_config(extraction)
    )
    output = tmp_path / "out" / "resnet18.h5"
    script = textwrap.dedent(SLOW_EXTRACTION).format(block=BLOCK, extraction=extraction)
    proc = subprocess.Popen([sys.executable, "-c", script, str(stimuli.root), str(output)])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if progress_path(output).exists():
                state = json.loads(progress_path(output).read_text())
                if state["next_image"] >= 6:
                    break
            assert proc.poll() is None, "extraction ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("no progress recorded in time")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not output.exists() and partial_path(output).exists()
    done_before = json.loads(progress_path(output).read_text())["next_image"]
    assert 6 <= done_before < len(stimuli)

    caplog.set_level("INFO", logger="actpipe")
    extract_activations(spec, stimuli, output, ExtractionOptions.from_config(extraction))
    resumed = [r.getMessage() for r in caplog.records if "resuming" in r.getMessage()]
    assert resumed and f"from image {done_before} of {len(stimuli)}" in resumed[0]
    assert_same(read_all(reference, "resnet18"), read_all(output, "resnet18"))
    assert not partial_path(output).exists() and not progress_path(output).exists()


def test_changed_config_starts_over_instead_of_resuming(stimuli, tmp_path, caplog):
    spec = ModelSpec.from_config("resnet18", BLOCK)
    output = tmp_path / "r.h5"
    partial_path(output).write_bytes(b"left over")
    progress_path(output).write_text(json.dumps({"resume_key": "other", "next_image": 4}))
    caplog.set_level("INFO", logger="actpipe")
    extract_activations(spec, stimuli, output, ExtractionOptions.from_config(EXTRACTION))
    assert not any("resuming" in r.getMessage() for r in caplog.records)
    assert read_all(output, "resnet18")["layer1"].shape[0] == len(stimuli)
