# Helpers shared by all rule files (config validation, derived lists, input functions).
# Rule files hold rules only.

import os
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError

from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")


GENERATED_SOURCES = ("gratings", "digits")
STIMULI = config["stimuli"]
MODELS = config["models"]
PARAMETER_SETS = config["clustering"]["parameter_sets"]
PREFIX = config["output_prefix"]


def _actpipe_version():
    """The package version, read without importing torch (a change reruns every job)."""
    init = Path(workflow.basedir) / "src" / "actpipe" / "__init__.py"
    match = re.search(r'__version__ = "([^"]+)"', init.read_text())
    return match.group(1) if match else "unknown"


ACTPIPE_VERSION = _actpipe_version()


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
        layer=model_layers(wildcards.model),
    )


CLUSTER_OUTPUTS = (
    "paths.json",
    "transitions.json",
    "centroids.json",
    "centroids.h5",
    "metadata.json",
    "quality.tsv",
)


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
    """The metadata.json of every (set, model, parameter set): the report reads its folder."""
    return [
        f"results/clusters/{stimset}/{model}/{pset}/{name}"
        for stimset in STIMULI
        for model in MODELS
        for pset in PARAMETER_SETS
        for name in ("metadata.json", "quality.tsv", "paths.json")
    ] + similarity_report_inputs()


def get_final_output():
    targets = ["results/report.md"]
    for stimset in STIMULI:
        targets.append(f"results/activations/{PREFIX}_{stimset}.h5")
        for model in MODELS:
            for pset in PARAMETER_SETS:
                base = f"results/clusters/{stimset}/{model}/{pset}"
                targets += [f"{base}/{name}" for name in CLUSTER_OUTPUTS]
    targets += similarity_outputs()
    return targets


# --------------------------------------------------------------------------- similarity
# Representational similarity (workflow/rules/similarity.smk, docs/similarity.md).

SIMILARITY = config.get("similarity", {})


def similarity_enabled():
    return bool(SIMILARITY.get("enabled", False))


def check_similarity_config():
    """Cross-validated distances need replicates: stop before any job runs otherwise."""
    if not similarity_enabled():
        return
    cv = [d for d in SIMILARITY.get("distances", []) if d == "crossnobis"]
    if cv and config.get("extraction", {}).get("n_replicates", 1) < 2:
        raise WorkflowError(
            "similarity.distances: 'crossnobis' is cross-validated across replicates and "
            "needs extraction.n_replicates >= 2; raise n_replicates or drop crossnobis"
        )


check_similarity_config()


def similarity_mem_mb(kind):
    """Memory of a similarity job (MB): its tiles or accumulators plus the condensed RDMs."""
    block = float(SIMILARITY.get("block_mb", 256))
    memory = float(SIMILARITY.get("memory_mb", 1024))
    n = int(SIMILARITY.get("max_stimuli", 5000))
    rdm_mb = len(SIMILARITY.get("distances", ["correlation"])) * 8 * n * n / 2 / 2**20
    if kind == "rdms":
        return int(2 * block + rdm_mb + 500)
    return int(memory * 1.5 + 2 * rdm_mb + 500)


def get_set_rdm_files(wildcards):
    return [
        f"results/similarity/{wildcards.stimset}/{model}/rdms.h5" for model in MODELS
    ]


def similarity_outputs():
    """Every similarity output of the run (none when similarity.enabled is false)."""
    if not similarity_enabled():
        return []
    targets = []
    for stimset in STIMULI:
        targets += [f"results/similarity/{stimset}/{model}/rdms.h5" for model in MODELS]
        targets += [
            f"results/similarity/{stimset}/compare.h5",
            f"results/similarity/{stimset}/compare.tsv",
        ]
    return targets


def similarity_report_inputs():
    """The comparisons the report's similarity section is rendered from."""
    if not similarity_enabled():
        return []
    return [f"results/similarity/{stimset}/compare.h5" for stimset in STIMULI]
