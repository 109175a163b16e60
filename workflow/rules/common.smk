# Helpers shared by all rule files (config validation, derived lists, input functions).
# Rule files hold rules only.

import re
from pathlib import Path

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
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))


def stimulus_dir(stimset):
    """Where a set's images are: the configured folder, or the materialised generated set."""
    block = STIMULI[stimset]
    if block["source"] == "folder":
        return block["path"]
    return f"results/stimuli/{stimset}"


def get_stimulus_dir(wildcards):
    return stimulus_dir(wildcards.stimset)


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


def get_final_output():
    targets = []
    for stimset in STIMULI:
        targets.append(f"results/activations/{PREFIX}_{stimset}.h5")
        for model in MODELS:
            for pset in PARAMETER_SETS:
                base = f"results/clusters/{stimset}/{model}/{pset}"
                targets += [f"{base}/metadata.json", f"{base}/paths.json"]
    return targets
