# Helpers shared by all rule files (config validation, derived lists, input functions).
# Rule files hold rules only.

import os
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import yaml
from snakemake.exceptions import WorkflowError

from snakemake.utils import validate

# The package's standard-library-only modules (version, names, result files, the canonical
# config, parameter sets) are read here; nothing that imports torch or numpy is.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from actpipe._version import __version__ as ACTPIPE_VERSION  # noqa: E402
from actpipe.clustering.params import resolve_parameter_set  # noqa: E402
from actpipe.config import (  # noqa: E402
    canonical,
    canonical_model,
    model_params,
    split_extraction,
)
from actpipe.errors import ClusteringError  # noqa: E402
from actpipe.names import entry_names, layer_key  # noqa: E402
from actpipe.results import CLUSTER_OUTPUTS  # noqa: E402

SCHEMA_FILE = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"


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


# Rules get the canonical form of their config block (defaults filled in, keys sorted,
# numbers typed, layer entries spelled out: actpipe.config), so a config that means the same
# reruns nothing and a change of meaning reruns exactly the jobs whose block changed.
SCHEMA = yaml.safe_load(SCHEMA_FILE.read_text())


def _canonical_parameter_set(name, block):
    try:
        return dict(sorted(resolve_parameter_set(block, name).to_dict().items()))
    except ClusteringError as exc:
        raise WorkflowError(f"clustering.parameter_sets.{name}: {exc}") from None


try:
    STIMULI = {
        name: canonical(block, SCHEMA["$defs"]["stimulus_set"], SCHEMA)
        for name, block in config["stimuli"].items()
    }
    MODELS = {
        name: canonical_model(block, SCHEMA, f"models.{name}.layers")
        for name, block in config["models"].items()
    }
except ValueError as exc:
    raise WorkflowError(str(exc)) from None
EXTRACTION, EXTRACTION_RUN = split_extraction(
    canonical(config["extraction"], SCHEMA["properties"]["extraction"], SCHEMA)
)
STORAGE = canonical(config["storage"], SCHEMA["properties"]["storage"], SCHEMA)
PARAMETER_SETS = {
    name: _canonical_parameter_set(name, block)
    for name, block in config["clustering"]["parameter_sets"].items()
}
# How a clustering job reads (not what it computes): not compared, so it reruns nothing.
PARAMETER_SET_RUN = {
    name: {key: block[key] for key in ("block_mb",) if key in block}
    for name, block in config["clustering"]["parameter_sets"].items()
}
PREFIX = config["output_prefix"]


def model_layers(model):
    """Layer names of a model, in config order (entries are names or {name, as, reduce}).

    Two entries going by the same name (or names differing only in letter case) stop the
    workflow here, naming both.
    """
    layers = MODELS[model]["layers"]
    if layers == "auto":
        return auto_layers(model)
    try:
        return [name for name, _ in entry_names(layers, f"models.{model}.layers")]
    except ValueError as exc:
        raise WorkflowError(str(exc)) from None


def layer_keys(model):
    """The layer keys of a model's layers: their names made safe for file names."""
    return [layer_key(name) for name in model_layers(model)]


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


def all_layer_keys():
    return sorted({key for model in MODELS for key in layer_keys(model)})


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


# What counts as an image is the rule of actpipe.stimuli.folder.list_images, restated here
# because the Snakefile is parsed without the package's dependencies (numpy, Pillow).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _count_values(value):
    return value if isinstance(value, int) else len(value)


def n_stimuli(stimset):
    """Number of images of a set, known without generating or reading any of them."""
    block = STIMULI[stimset]
    if block["source"] == "gratings":
        return (
            _count_values(block["orientations"])
            * _count_values(block["phases"])
            * len(block["spatial_frequencies"])
        )
    if block["source"] == "digits":
        return min(block["n"] or 1797, 1797)
    folder = Path(block["path"])
    if not folder.is_dir():
        raise WorkflowError(
            f"stimuli.{stimset}.path: folder {str(folder)!r} does not exist; fix the path "
            "in the config (relative paths are relative to the working directory)"
        )
    return sum(
        1
        for entry in os.scandir(folder)
        if entry.is_file()
        and not entry.name.startswith(".")
        and entry.name.lower().endswith(IMAGE_SUFFIXES)
    )


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
        layer=layer_keys(wildcards.model),
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


def get_parameter_set_run(wildcards):
    return SimpleNamespace(**PARAMETER_SET_RUN[wildcards.pset])


def get_model_params(wildcards):
    """A model's canonical block, without what only concerns scheduling (resources)."""
    return model_params(MODELS[wildcards.model])


def get_stimulus_spec(wildcards):
    """A generated set's canonical block, without what only concerns scheduling."""
    return {k: v for k, v in STIMULI[wildcards.stimset].items() if k != "shard_size"}


EXTRACTION_RUN_SETTINGS = SimpleNamespace(**EXTRACTION_RUN)


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
