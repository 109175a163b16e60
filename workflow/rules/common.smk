# Helpers shared by all rule files (config validation, derived lists, input functions).
# Rule files hold rules only.

import os
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from snakemake.utils import validate

# The package's standard-library-only modules (version, errors, result file names, the
# listing of stimulus folders) are read here; nothing that imports torch, numpy or Pillow is
# imported at parse time.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from actpipe._version import __version__ as ACTPIPE_VERSION  # noqa: E402
from actpipe.errors import StimulusError  # noqa: E402
from actpipe.imagefiles import (  # noqa: E402
    DEFAULT_EXTENSIONS,
    DEFAULT_MAX_IMAGE_PIXELS,
    list_image_files,
    listing_digest,
)
from actpipe.results import CLUSTER_OUTPUTS  # noqa: E402


def refuse_unavailable(config):
    """Config values the schema refuses because nothing implements them yet, explained."""
    psets = (config.get("clustering") or {}).get("parameter_sets") or {}
    for name, pset in psets.items():
        if isinstance(pset, dict) and pset.get("input") == "activations_x_gradients":
            raise WorkflowError(
                f"clustering.parameter_sets.{name}.input: activations_x_gradients is not "
                "available: no rule of this workflow produces gradients yet, so there is "
                "nothing to multiply the activations with. Use input: activations (or cluster "
                "a gradient file made elsewhere with actpipe.clustering.cluster_layer)."
            )


refuse_unavailable(config)
validate(config, schema="../schemas/config.schema.yaml")


STIMULI = config["stimuli"]
MODELS = config["models"]
PARAMETER_SETS = config["clustering"]["parameter_sets"]
PREFIX = config["output_prefix"]


def model_layers(model):
    """Layer names of a model, in config order (entries are names or {name, reduce})."""
    layers = MODELS[model]["layers"]
    if layers == "auto":
        return auto_layers(model)
    return [e if isinstance(e, str) else e["name"] for e in layers]


def package_env():
    """The environment of a helper Python process that imports this repository's actpipe."""
    src = str(Path(workflow.basedir) / "src")
    path = os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def auto_layers(model):
    """The layers `layers: auto` picks for a model, cached per model block.

    Resolving needs the model (torch), so it runs once in a separate Python process and is
    cached in .snakemake/actpipe/; later parses (every cluster job) only read the cache.
    """
    import hashlib
    import json
    import subprocess
    import sys

    block = MODELS[model]
    key = hashlib.sha256(json.dumps(block, sort_keys=True).encode()).hexdigest()[:16]
    cache = Path(".snakemake/actpipe/auto_layers") / f"{model}.{key}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    env = package_env()
    request = json.dumps({"model": model, "block": block})
    proc = subprocess.run(
        [sys.executable, "-m", "actpipe.models.autolayers", request],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode != 0:
        raise WorkflowError(
            f"models.{model}: 'layers: auto' could not be resolved: "
            f"{proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}. "
            "List the layers explicitly (see `actpipe layers`)."
        )
    names = json.loads(proc.stdout)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
    tmp.write_text(json.dumps(names))
    os.replace(tmp, cache)
    return names


# Model files the workflow makes itself (rules in models.smk), and the training settings.
PRODUCED_MODEL_FILES = (
    "results/models/digits_cnn.safetensors",
    "results/models/digits_cnn.onnx",
)
DIGITS_CNN_TRAINING = {"size": 32, "epochs": 12, "seed": 0, "min_accuracy": 0.95}
ONNX_CACHE = "results/models/instrumented"


def model_files(model):
    """The weights or ONNX file of a model when the workflow produces it (else none)."""
    block = MODELS[model]
    paths = [block.get("weights", ""), block.get("path", "")]
    if block["source"] == "onnx":
        paths.append(block.get("name", ""))
    return [p for p in paths if p in PRODUCED_MODEL_FILES]


def get_model_files(wildcards):
    return model_files(wildcards.model)


def check_models_at_start():
    """Check every model entry before any job runs; stop the workflow with every problem.

    Runs `python -m actpipe.models.check` in a separate process (the Snakefile process never
    imports torch) and writes logs/check_models.log. Skipped when torch is not importable by
    this Python (e.g. only the jobs' conda environments have it): each job checks its model.
    """
    import json
    import subprocess
    import sys

    log = Path("logs/check_models.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "actpipe.models.check",
        json.dumps(MODELS),
        str(log),
    ]
    for path in PRODUCED_MODEL_FILES:
        command += ["--skip", path]
    env = package_env()
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode == 0:
        return
    if "No module named 'torch'" in proc.stderr:
        print("check of the model entries skipped: torch is not importable here")
        return
    raise WorkflowError(proc.stderr.strip() or f"model check failed; see {log}")


def all_layers():
    return sorted({layer for model in MODELS for layer in model_layers(model)})


def alternation(names):
    """A regex matching exactly one of the names (longest first)."""
    if not names:
        return "(?!)"  # matches nothing
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))


def stimulus_dir(stimset):
    """Where a set's images are: the configured folder, or the materialised generated set."""
    block = STIMULI[stimset]
    if block["source"] == "folder":
        return block["path"]
    return f"results/stimuli/{stimset}"


def get_stimulus_dir(wildcards):
    return stimulus_dir(wildcards.stimset)


# How a folder set is read (stimuli.{set}: recursive, extensions, max_image_pixels) and the
# defaults of these keys; the listing itself is actpipe.imagefiles.list_image_files, the same
# function the extraction jobs use (standard library only).
FOLDER_DEFAULTS = {
    "recursive": False,
    "extensions": list(DEFAULT_EXTENSIONS),
    "max_image_pixels": DEFAULT_MAX_IMAGE_PIXELS,
}


def folder_options(stimset):
    """The listing keys of a set, defaults filled in (generated sets: the defaults)."""
    block = STIMULI[stimset]
    if block["source"] != "folder":
        return dict(FOLDER_DEFAULTS)
    return {key: block.get(key, default) for key, default in FOLDER_DEFAULTS.items()}


def get_folder_options(wildcards):
    return folder_options(wildcards.stimset)


_LISTINGS = {}


def folder_listing(stimset):
    """The images of a folder set, listed once per Snakefile parse."""
    if stimset not in _LISTINGS:
        block = STIMULI[stimset]
        options = folder_options(stimset)
        if not Path(block["path"]).is_dir():
            raise WorkflowError(
                f"stimuli.{stimset}.path: folder {block['path']!r} does not exist or is not a "
                "folder; fix the path in the config (relative paths are relative to the "
                "working directory)"
            )
        try:
            _LISTINGS[stimset] = list_image_files(
                block["path"], options["recursive"], options["extensions"]
            )
        except StimulusError as exc:
            raise WorkflowError(f"stimuli.{stimset}: {exc}")
    return _LISTINGS[stimset]


def get_stimulus_listing(wildcards):
    """A folder set's listing digest (names, sizes, mtimes of its images), as a rule param.

    Snakemake compares a folder input by the folder's own mtime, which a file added, removed
    or rewritten in a subfolder (or rewritten in place) leaves alone; the digest changes in
    all these cases, so extraction reruns. Generated sets are outputs of their own rule.
    """
    if STIMULI[wildcards.stimset]["source"] != "folder":
        return "generated"
    return listing_digest(folder_listing(wildcards.stimset))


def get_labels_state(wildcards):
    """Size and mtime of a folder set's labels.csv (or "none"), a param of the aggregation: it
    reruns when the labels are edited in place."""
    if STIMULI[wildcards.stimset]["source"] != "folder":
        return "generated"
    path = Path(STIMULI[wildcards.stimset]["path"]) / "labels.csv"
    try:
        st = path.stat()
    except OSError:
        return "none"
    return f"{st.st_size}:{st.st_mtime_ns}"


def _count_values(value):
    return value if isinstance(value, int) else len(value)


def n_stimuli(stimset):
    """Number of images of a set, known without generating or decoding any of them."""
    block = STIMULI[stimset]
    if block["source"] == "gratings":
        return (
            _count_values(block["orientations"])
            * _count_values(block["phases"])
            * len(block["spatial_frequencies"])
        )
    if block["source"] == "digits":
        return min(block["n"] or 1797, 1797)
    return len(folder_listing(stimset))


def shard_ids(stimset):
    """Shard indices of a set with `shard_size` (zero-padded, 4 digits)."""
    size = STIMULI[stimset]["shard_size"]
    count = max(1, -(-n_stimuli(stimset) // size))
    return [f"{i:04d}" for i in range(count)]


SHARDED_SETS = [s for s in STIMULI if STIMULI[s].get("shard_size")]
UNSHARDED_SETS = [s for s in STIMULI if s not in SHARDED_SETS]


def get_shard_files(wildcards):
    return expand(
        "results/activations/{stimset}/shards/{model}/shard{shard}.h5",
        stimset=wildcards.stimset,
        model=wildcards.model,
        shard=shard_ids(wildcards.stimset),
    )


def get_shard_rows(wildcards):
    """[start, stop) of the stimulus rows of one shard."""
    size = STIMULI[wildcards.stimset]["shard_size"]
    start = int(wildcards.shard) * size
    return [start, start + size]


def activation_file(stimset, model):
    return f"results/activations/{stimset}/{model}.h5"


def get_activation_file(wildcards):
    return activation_file(wildcards.stimset, wildcards.model)


def get_set_model_files(wildcards):
    return [activation_file(wildcards.stimset, model) for model in MODELS]


def get_layer_cluster_files(wildcards):
    return expand(
        "results/clusters/{stimset}/{model}/{pset}/layers/{layer}.h5",
        stimset=wildcards.stimset,
        model=wildcards.model,
        pset=wildcards.pset,
        layer=model_layers(wildcards.model),
    )


def cluster_outputs(folder):
    """The aggregate outputs of one (set, model, parameter set) folder, by output name."""
    return {key: f"{folder}/{name}" for key, name in CLUSTER_OUTPUTS.items()}


def gradient_file(stimset, model):
    """Where a parameter set with `input: activations_x_gradients` reads gradients."""
    return f"results/gradients/{stimset}/{model}.h5"


def get_cluster_inputs(wildcards):
    """The activation file, plus the gradient file when the parameter set asks for it."""
    inputs = {"activations": activation_file(wildcards.stimset, wildcards.model)}
    if PARAMETER_SETS[wildcards.pset].get("input") == "activations_x_gradients":
        inputs["gradients"] = gradient_file(wildcards.stimset, wildcards.model)
    return inputs


def get_parameter_set(wildcards):
    return PARAMETER_SETS[wildcards.pset]


def extraction_resources(key, default):
    """A resource of the model's optional `resources:` block (used by the SLURM profile)."""

    def lookup(wildcards):
        return MODELS[wildcards.model].get("resources", {}).get(key, default)

    return lookup


def uses_gpu(wildcards):
    """1 when the model asks for a GPU: counted by the local `gpu_jobs` limit."""
    return int(MODELS[wildcards.model].get("resources", {}).get("gpu", 0) > 0)


def get_report_inputs(wildcards):
    """What the report reads of every (set, model, parameter set) folder, by kind."""
    folders = [
        f"results/clusters/{stimset}/{model}/{pset}"
        for stimset in STIMULI
        for model in MODELS
        for pset in PARAMETER_SETS
    ]
    return {
        kind: [cluster_outputs(folder)[kind] for folder in folders]
        for kind in ("metadata", "quality", "paths")
    }


def get_final_output():
    targets = ["results/report.md"]
    for stimset in STIMULI:
        targets.append(f"results/activations/{PREFIX}_{stimset}.h5")
        for model in MODELS:
            for pset in PARAMETER_SETS:
                base = f"results/clusters/{stimset}/{model}/{pset}"
                targets += list(cluster_outputs(base).values())
    return targets
