"""The shipped default config, run once: sound files, and configs that mean the same rerun
nothing while a change of meaning reruns exactly its jobs."""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

import pytest
import yaml

from actpipe.clustering.params import SCOPE_OPTIONS, resolve_parameter_set
from actpipe.storage.validate import validate_file
from tests.helpers.workflow import REPO, run_snakemake

pytestmark = pytest.mark.workflow

HEAVY = (
    "materialise_stimuli",
    "train_digits_cnn",
    "export_digits_cnn",
    "extract_activations",
    "cluster_paths",
    "compute_gradients",
    "compute_rdms",
    "compare_layers",
)


def default_config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


@pytest.fixture(scope="module")
def default_run(tmp_path_factory) -> Path:
    """A complete run of config/config.yaml in a temporary working directory."""
    workdir = tmp_path_factory.mktemp("default")
    (workdir / "config").mkdir()
    shutil.copy(REPO / "config" / "config.yaml", workdir / "config" / "config.yaml")
    run_snakemake(workdir, "--cores", "2", timeout=1800)
    return workdir


def planned(workdir: Path, config: dict) -> dict[str, int]:
    """Jobs ``snakemake -n`` plans for ``config`` (the shipped config is put back after)."""
    path = workdir / "config" / "config.yaml"
    original = path.read_text()
    path.write_text(yaml.safe_dump(config, sort_keys=False, default_flow_style=None))
    try:
        out = run_snakemake(workdir, "-n", "--cores", "1").stdout
    finally:
        path.write_text(original)
    if "Nothing to be done" in out:
        return {}
    stats = out.split("Job stats:")[1]
    return {job: int(n) for job, n in re.findall(r"^(\w+)\s+(\d+)$", stats, flags=re.M)}


def shuffled(value, rng: random.Random):
    """The same config with the keys of every mapping in another (seeded) order."""
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {k: shuffled(value[k], rng) for k in keys}
    if isinstance(value, list):
        return [shuffled(v, rng) for v in value]
    return value


def spelled_out(config: dict) -> dict:
    """The same config with defaults written out and every layer entry as a mapping."""
    config = yaml.safe_load(yaml.safe_dump(config))
    for block in config["models"].values():
        reduce = block.setdefault("reduce", "flatten")
        block.setdefault("seed", 0)
        block.setdefault("strict", True)
        block.setdefault("kwargs", {})
        block["layers"] = [
            {"name": e, "reduce": reduce} if isinstance(e, str) else {"reduce": reduce, **e}
            for e in block["layers"]
        ]
    grating = config["stimuli"]["gratings"]
    grating["contrast"] = int(grating["contrast"])  # 1 for 1.0: the same number
    grating["spatial_frequencies"] = [float(f) for f in grating["spatial_frequencies"]]
    config["storage"]["compression_level"] = 4
    config["extraction"]["jitter"]["scale"] = [1, 1]
    psets = config["clustering"]["parameter_sets"]
    for name, block in psets.items():
        scope = {k: block.pop(k) for k in SCOPE_OPTIONS if k in block}
        full = resolve_parameter_set(block, name).to_dict()
        psets[name] = {**{k: v for k, v in full.items() if v is not None}, **scope}
    return config


def test_every_file_of_the_default_run_validates(default_run):
    files = sorted((default_run / "results" / "activations").rglob("*.h5"))
    assert files
    for path in files:
        assert validate_file(path) == [], path


def test_nothing_reruns_for_a_config_that_means_the_same(default_run):
    config = default_config()
    assert planned(default_run, config) == {}
    for seed in range(2):
        jobs = planned(default_run, shuffled(config, random.Random(seed)))
        assert not set(jobs) & set(HEAVY), jobs
    jobs = planned(default_run, shuffled(spelled_out(config), random.Random(5)))
    assert not set(jobs) & set(HEAVY), jobs


def test_run_settings_rerun_nothing(default_run):
    config = default_config()
    config["extraction"].update(progress=False, checkpoint_seconds=5, resume=False)
    config["models"]["resnet18"]["resources"] = {"mem_mb": 1234}
    for block in config["clustering"]["parameter_sets"].values():
        block["block_mb"] = 8
    assert planned(default_run, config) == {}


def test_changing_one_models_layers_reruns_only_that_model(default_run):
    config = default_config()
    config["models"]["digits_cnn"]["layers"].append({"name": "pool", "as": "pooled"})
    path = default_run / "config" / "config.yaml"
    original = path.read_text()
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        out = run_snakemake(default_run, "-n", "--cores", "1").stdout
    finally:
        path.write_text(original)
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", out.split("Job stats:")[1], flags=re.M))
    n_sets = len(config["stimuli"])
    assert int(stats["extract_activations"]) == n_sets
    assert int(stats["cluster_paths"]) >= n_sets  # every parameter set of digits_cnn, anew
    assert "materialise_stimuli" not in stats and "train_digits_cnn" not in stats
    assert set(re.findall(r"model=([\w.+-]+)", out)) == {"digits_cnn"}
