"""The workflow on a real single-node SLURM (tests/slurm/up.sh), through profiles/slurm.

A session fixture brings SLURM up and tears down exactly what it started. The tests are skipped
only when SLURM cannot be installed on this machine at all (up.sh exit code 3); any other
bring-up failure is a test failure. Every snakemake call is wrapped in `timeout -k`: when the
plugin's status checks fail, snakemake waits forever and ignores SIGTERM.

    pytest -m slurm tests/test_slurm.py
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from tests.helpers.workflow import tiny_config

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
UP = REPO / "tests" / "slurm" / "up.sh"
DOWN = REPO / "tests" / "slurm" / "down.sh"
PROFILE = REPO / "profiles" / "slurm"
TEST_PROFILE = REPO / "tests" / "slurm" / "profile-test"
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"

# What up.sh creates (tests/slurm/profile-test points at them as well).
ACCOUNT = "actpipe"
PARTITION = "debug"

# Seconds allowed for one snakemake run through SLURM (each DAG level costs about 12 s).
SLURM_RUN_TIMEOUT = 600


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def slurm_cluster():
    """A running local SLURM for the session, stopped afterwards (only what up.sh started)."""
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.fail(
            "snakemake-executor-plugin-slurm is not installed: pip install -e '.[slurm]'",
            pytrace=False,
        )
    proc = subprocess.run(
        ["bash", str(UP)], capture_output=True, text=True, timeout=1800, stdin=subprocess.DEVNULL
    )
    output = proc.stdout + proc.stderr
    if proc.returncode == 3:
        reason = [line for line in output.splitlines() if "cannot be installed" in line]
        pytest.skip((reason or [output.strip()[-500:]])[-1])
    if proc.returncode != 0:
        down = subprocess.run(["bash", str(DOWN)], capture_output=True, text=True, timeout=300)
        pytest.fail(
            f"tests/slurm/up.sh exited {proc.returncode}:\n{output}\n"
            f"down.sh:\n{down.stdout}{down.stderr}",
            pytrace=False,
        )
    yield output
    down = subprocess.run(["bash", str(DOWN)], capture_output=True, text=True, timeout=300)
    if down.returncode != 0:
        raise RuntimeError(f"tests/slurm/down.sh failed:\n{down.stdout}{down.stderr}")


def _base_config() -> dict:
    """The suite's tiny workflow config."""
    return copy.deepcopy(tiny_config())


def slurm_config(gpus: int = 1) -> dict:
    """A config whose DAG is as shallow and small as the workflow allows.

    One stimulus set, one model, one parameter set, few images and layers. The extraction job
    asks for ``gpus`` GPUs (the node has one fake GPU: a scheduling token, the job runs on the
    CPU), one CPU and little memory, so the SLURM run and the local run compute the same way.
    """
    config = _base_config()
    stimuli = config["stimuli"]
    stimset = "gratings" if "gratings" in stimuli else next(iter(stimuli))
    block = dict(stimuli[stimset])
    block.pop("shard_size", None)  # one extraction job per (set, model)
    if block.get("source") == "gratings":
        block.update(size=32, orientations=4, phases=1, spatial_frequencies=[2, 4])
    elif block.get("source") == "digits":
        block.update(size=32, n=20)
    config["stimuli"] = {stimset: block}

    models = config["models"]
    name = "resnet18" if "resnet18" in models else next(iter(models))
    model = dict(models[name])
    layers = model["layers"]
    if len(layers) > 3:
        model["layers"] = [layers[0], layers[len(layers) // 2], layers[-1]]
    if isinstance(model.get("preprocess"), dict):
        model["preprocess"] = {**model["preprocess"], "size": 32, "resize": 32}
    model["batch_size"] = 8
    model["resources"] = {"gpu": gpus, "cpus": 1, "mem_mb": 2000, "runtime": 10}
    config["models"] = {name: model}

    extraction = dict(config.get("extraction") or {})
    extraction.update(device="cpu", progress=False)
    config["extraction"] = extraction

    clustering = dict(config.get("clustering") or {})
    psets = clustering.get("parameter_sets") or {"kmeans_k3": {"method": "kmeans", "k": 3}}
    pset_name, pset = next(iter(psets.items()))
    clustering["parameter_sets"] = {pset_name: {**pset, "k": min(pset["k"], 3), "n_init": 2}}
    config["clustering"] = clustering
    return config


def write_config(workdir: Path, config: dict) -> None:
    path = workdir / "config" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def snakemake(workdir: Path, *args: str, timeout: int) -> subprocess.CompletedProcess:
    """Run the repository's workflow in ``workdir`` under `timeout -k 10`; output merged."""
    cmd = ["timeout", "-k", "10", str(timeout), SNAKEMAKE, "-s", str(SNAKEFILE)]
    cmd += ["-d", str(workdir), *args]
    return subprocess.run(
        cmd,
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        timeout=timeout + 30,
        env={**os.environ, "HDF5_USE_FILE_LOCKING": "FALSE"},
    )


def slurm_profile_args() -> list[str]:
    return ["--profile", str(PROFILE), "--profile", str(TEST_PROFILE)]


def slurm_logs(workdir: Path, lines: int = 15) -> str:
    """The end of every SLURM job log of a run, for failure messages."""
    parts = []
    for log in sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"== {log.relative_to(workdir)}\n" + "\n".join(tail))
    return "\n".join(parts)


def sacct_jobs(run_id: str, since: datetime) -> dict[str, dict[str, str]]:
    """Jobs named ``run_id`` (the plugin names every job of a run so) known to accounting."""
    fields = "JobID,State,Account,Partition,AllocTRES,Comment"
    start = since.strftime("%Y-%m-%dT%H:%M:%S")
    cmd = ["sacct", "-X", "-n", "-P", "-S", start, f"--name={run_id}", "-o", fields]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)
    jobs = {}
    for line in proc.stdout.splitlines():
        jobid, state, account, partition, tres, comment = line.split("|", 5)
        jobs[jobid] = dict(
            state=state, account=account, partition=partition, tres=tres, comment=comment
        )
    return jobs


def output_files(workdir: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(workdir)): p
        for p in sorted((workdir / "results").rglob("*"))
        if p.is_file() and not p.name.startswith(".snakemake")
    }


def h5_datasets(path: Path) -> dict[str, np.ndarray]:
    datasets = {}

    def collect(name, obj):
        if isinstance(obj, h5py.Dataset):
            datasets[name] = obj[()]

    with h5py.File(path, "r") as f:
        f.visititems(collect)
    return datasets


def assert_same_outputs(local: Path, remote: Path) -> None:
    """Same files; HDF5 datasets equal (numpy), JSON equal by content, other files by bytes."""
    ours, theirs = output_files(local), output_files(remote)
    assert sorted(theirs) == sorted(ours), "the two runs wrote different files"
    for rel, path in ours.items():
        other = theirs[rel]
        if path.suffix == ".h5":
            a, b = h5_datasets(path), h5_datasets(other)
            assert sorted(b) == sorted(a), f"{rel}: different datasets"
            for name in a:
                assert a[name].dtype == b[name].dtype, f"{rel}:{name}: dtype differs"
                if a[name].dtype.kind in "fc":
                    np.testing.assert_array_equal(b[name], a[name], err_msg=f"{rel}:{name}")
                else:
                    assert np.array_equal(b[name], a[name]), f"{rel}:{name}: values differ"
        elif path.suffix == ".json":
            assert json.loads(other.read_text()) == json.loads(path.read_text()), rel
        else:
            assert other.read_bytes() == path.read_bytes(), rel


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------
def test_workflow_through_slurm_equals_local_run(slurm_cluster, tmp_path):
    """Every non-local job goes through sbatch, and the results equal a local run's."""
    local, remote = tmp_path / "local", tmp_path / "slurm"
    config = slurm_config(gpus=1)
    write_config(local, config)
    write_config(remote, config)

    proc = snakemake(local, "--cores", "2", timeout=600)
    assert proc.returncode == 0, f"local run failed:\n{proc.stdout[-6000:]}"

    since = datetime.now().replace(microsecond=0)
    proc = snakemake(remote, *slurm_profile_args(), timeout=SLURM_RUN_TIMEOUT)
    out = proc.stdout
    assert proc.returncode == 0, (
        f"SLURM run exited {proc.returncode} (124/137: timed out):\n{out[-8000:]}\n"
        f"{slurm_logs(remote)}"
    )

    # What snakemake says: every `rule` job (not `localrule`) was submitted with sbatch.
    run_id = re.search(r"SLURM run ID: ([0-9a-f-]{36})", out).group(1)
    remote_rules = re.findall(r"^rule (\w+):$", out, flags=re.MULTILINE)
    local_rules = re.findall(r"^localrule (\w+):$", out, flags=re.MULTILINE)
    submitted = re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+)", out)
    assert {"extract_activations", "cluster_paths"} <= set(remote_rules), remote_rules
    assert not {"extract_activations", "cluster_paths"} & set(local_rules), local_rules
    assert len(submitted) == len(remote_rules), (remote_rules, submitted)

    # What SLURM's accounting says: exactly those jobs ran, each completed, under the test
    # account and partition; the extraction job held the GPU (`gpu=1` -> `--gpus=1`).
    jobs = sacct_jobs(run_id, since)
    assert sorted(jobs) == sorted(submitted), (jobs, submitted)
    assert {j["state"] for j in jobs.values()} == {"COMPLETED"}, jobs
    assert {(j["account"], j["partition"]) for j in jobs.values()} == {(ACCOUNT, PARTITION)}
    by_rule = {}
    for job in jobs.values():
        rule = re.match(r"rule_(\w+?)(_wildcards_|$)", job["comment"]).group(1)
        by_rule.setdefault(rule, []).append(job)
    assert sorted(r for r, js in by_rule.items() for _ in js) == sorted(remote_rules)
    for job in by_rule["extract_activations"]:
        assert "gres/gpu=1" in job["tres"], job
    for job in by_rule["cluster_paths"]:
        assert "gres/gpu" not in job["tres"], job

    assert_same_outputs(local, remote)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("partition", "Invalid partition name specified"),
        ("gpus", "Requested node configuration is not available"),
    ],
)
def test_impossible_request_fails_at_submission(slurm_cluster, tmp_path, case, expected):
    """A job SLURM cannot ever run is refused by sbatch; snakemake stops with the reason."""
    args = slurm_profile_args()
    if case == "partition":
        # Every job asks for a partition that does not exist: the first sbatch fails.
        write_config(tmp_path, slurm_config(gpus=1))
        resources = [f"slurm_account={ACCOUNT}", "slurm_partition=no_such_partition"]
        args += ["--default-resources", *resources, "mem_mb=1000", "runtime=10"]
    else:
        # The model asks for two GPUs per extraction job; the node has one.
        write_config(tmp_path, slurm_config(gpus=2))

    since = datetime.now().replace(microsecond=0)
    proc = snakemake(tmp_path, *args, timeout=300)
    out = proc.stdout
    assert proc.returncode not in (124, 137), f"snakemake hung:\n{out[-6000:]}"
    assert proc.returncode != 0, out[-6000:]
    logs = slurm_logs(tmp_path)
    # Submitted with fewer GPUs than the rule asks for: a global `gpu` limit (e.g. in
    # profiles/default) caps each job's request before submission.
    capped = "is more than the job's gres=gpu" in logs
    assert not capped, f"the gpu request was capped before sbatch:\n{out[-4000:]}\n{logs}"
    assert "SLURM sbatch failed" in out and expected in out, f"{out[-8000:]}\n{logs}"
    if case == "gpus":
        assert "--gpus=2" in out, out[-8000:]
    # The refused job never got an allocation (accounting may list it as FAILED, empty TRES).
    run_id = re.search(r"SLURM run ID: ([0-9a-f-]{36})", out).group(1)
    jobs = sacct_jobs(run_id, since)
    refused = "rule_extract" if case == "gpus" else "rule_"
    assert not [j for j in jobs.values() if j["comment"].startswith(refused) and j["tres"]], jobs


def _kill_extraction(workdir: Path) -> str | None:
    """SIGKILL the extraction process of a running SLURM job of ``workdir`` (as the OOM
    killer or a dying node would); returns that job's SLURM id."""
    proc = subprocess.run(
        ["squeue", "-h", "-t", "RUNNING", "-o", "%i|%k"], capture_output=True, text=True, timeout=30
    )
    jobs = [
        line.partition("|")[0].strip()
        for line in proc.stdout.splitlines()
        if line.partition("|")[2].startswith("rule_extract_activations")
    ]
    pattern = f"{workdir}/.snakemake/scripts/.*extract_activations.py"
    pids = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    if len(jobs) != 1 or not pids:
        return None
    for pid in pids:
        os.kill(int(pid), signal.SIGKILL)
    return jobs[0]


def test_job_killed_on_its_node_is_retried_and_resumes(slurm_cluster, tmp_path):
    """Kill an extraction mid-way on its node: Snakemake reports the failed SLURM job with its
    log, resubmits it (retries) and the new job continues from the last recorded batch; the
    result equals an uninterrupted local run."""
    config = slurm_config(gpus=1)
    stimset = next(iter(config["stimuli"]))
    model = next(iter(config["models"]))
    config["stimuli"][stimset].update(size=128, orientations=48, phases=2)
    block = config["models"][model]
    block["preprocess"] = {**block["preprocess"], "size": 128, "resize": 128}
    block["batch_size"] = 4
    config["extraction"]["checkpoint_seconds"] = 0
    target = f"results/activations/{stimset}/{model}.h5"

    local = tmp_path / "local"
    write_config(local, config)
    proc = snakemake(local, "--cores", "2", target, timeout=600)
    assert proc.returncode == 0, f"local run failed:\n{proc.stdout[-6000:]}"

    remote = tmp_path / "remote"
    write_config(remote, config)
    progress = remote / "results" / "activations" / stimset / f".{model}.h5.progress.json"
    cmd = ["timeout", "-k", "10", str(SLURM_RUN_TIMEOUT), SNAKEMAKE, "-s", str(SNAKEFILE)]
    cmd += ["-d", str(remote), *slurm_profile_args(), "--retries", "1", target]
    log_path = tmp_path / "remote.log"
    with open(log_path, "w") as out:
        run = subprocess.Popen(
            cmd,
            cwd=remote,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "HDF5_USE_FILE_LOCKING": "FALSE"},
        )
        killed = None
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and run.poll() is None:
                try:
                    state = json.loads(progress.read_text())
                except (FileNotFoundError, ValueError):
                    state = {}
                if state.get("next_image", 0) >= 8:
                    killed = _kill_extraction(remote)
                    if killed:
                        break
                time.sleep(0.05)
            run.wait(timeout=SLURM_RUN_TIMEOUT + 30)
        finally:
            if run.poll() is None:
                run.kill()
    output = log_path.read_text()
    assert killed, f"the extraction was never seen running with progress:\n{output[-6000:]}"
    assert run.returncode == 0, output[-8000:]
    # The failed job is reported with its SLURM log, then resubmitted once.
    assert re.search(rf"SLURM-job '{killed}' failed", output), output[-8000:]
    assert ".snakemake/slurm_logs/rule_extract_activations" in output, output[-8000:]
    rule_log = (remote / "logs" / "extract_activations" / stimset / f"{model}.log").read_text()
    match = re.search(r"resuming \S+ from image (\d+) of (\d+)", rule_log)
    assert match and 8 <= int(match.group(1)) < int(match.group(2)), rule_log
    a = h5_datasets(local / target)
    b = h5_datasets(remote / target)
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_array_equal(b[name], a[name], err_msg=name)
    assert not progress.exists()
