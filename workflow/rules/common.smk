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
    return [e if isinstance(e, str) else e["name"] for e in MODELS[model]["layers"]]


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


def extraction_resources(key, default):
    """A resource of the model's optional `resources:` block (used by the SLURM profile)."""

    def lookup(wildcards):
        return MODELS[wildcards.model].get("resources", {}).get(key, default)

    return lookup


def uses_gpu(wildcards):
    """1 when the model asks for a GPU: counted by the local `gpu_jobs` limit."""
    return int(MODELS[wildcards.model].get("resources", {}).get("gpu", 0) > 0)


def get_final_output():
    targets = []
    for stimset in STIMULI:
        targets.append(f"results/activations/{PREFIX}_{stimset}.h5")
        for model in MODELS:
            for pset in PARAMETER_SETS:
                base = f"results/clusters/{stimset}/{model}/{pset}"
                targets += [f"{base}/metadata.json", f"{base}/paths.json"]
    return targets
