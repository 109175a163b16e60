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
# config, parameter sets, the listing of stimulus folders) are read here; nothing that imports
# torch, numpy or Pillow is.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from actpipe._version import __version__ as ACTPIPE_VERSION  # noqa: E402
from actpipe.clustering.params import SCOPE_OPTIONS, resolve_parameter_set  # noqa: E402
from actpipe.config import (  # noqa: E402
    canonical,
    canonical_model,
    model_params,
    split_extraction,
)
from actpipe.errors import ClusteringError, ModelError, StimulusError  # noqa: E402
from actpipe.gradients.settings import GradientOptions  # noqa: E402
from actpipe.imagefiles import (  # noqa: E402
    DEFAULT_EXTENSIONS,
    DEFAULT_MAX_IMAGE_PIXELS,
    list_image_files,
    listing_digest,
    normalise_extensions,
)
from actpipe.names import entry_names, layer_key, split_head  # noqa: E402
from actpipe.probes import parse_probe, probe_gradients_message  # noqa: E402
from actpipe.results import (  # noqa: E402
    ACTIVATION_X_GRADIENT,
    CLUSTER_OUTPUTS,
    LAYER_CLUSTERS_DIR,
    THUMBNAILS,
)

SCHEMA_FILE = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"


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
# The gradients block of models without their own; only the gradient jobs get it.
EXTRACTION_GRADIENTS = EXTRACTION.pop("gradients", None)
STORAGE = canonical(config["storage"], SCHEMA["properties"]["storage"], SCHEMA)
PARAMETER_SETS = {
    name: _canonical_parameter_set(
        name, {k: v for k, v in block.items() if k not in SCOPE_OPTIONS}
    )
    for name, block in config["clustering"]["parameter_sets"].items()
}


def _scope(pset, block):
    """The models and stimulus sets a parameter set applies to (`models:`, `stimuli:`; default
    all), in config order; a name that is not configured stops the workflow."""
    scope = {}
    for key, kind, known in (
        ("models", "model", config["models"]),
        ("stimuli", "stimulus set", config["stimuli"]),
    ):
        names = block.get(key)
        unknown = [n for n in names or [] if n not in known]
        if unknown:
            raise WorkflowError(
                f"clustering.parameter_sets.{pset}.{key}: no {kind} {', '.join(unknown)} in "
                f"the config (configured: {', '.join(known)})"
            )
        scope[key] = [n for n in known if names is None or n in names]
    return scope


PARAMETER_SET_SCOPE = {
    name: _scope(name, block)
    for name, block in config["clustering"]["parameter_sets"].items()
}
# How a clustering job reads (not what it computes): not compared, so it reruns nothing.
PARAMETER_SET_RUN = {
    name: {key: block[key] for key in ("block_mb",) if key in block}
    for name, block in config["clustering"]["parameter_sets"].items()
}
PREFIX = config["output_prefix"]
# Models with attention metrics (docs/transformers.md): each gets a summary per stimulus set.
ATTENTION_MODELS = [model for model in MODELS if MODELS[model].get("metrics")]


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
    """The weights or ONNX file of a model: one the workflow produces, or a local file.

    A local file is an input, so replacing it (a retrained checkpoint, a new export) reruns
    the model's jobs. A file that does not exist is left to the model check, which says what
    to do. (An ONNX model's external data files are covered by the checksum recorded in the
    activation file, not by this.)
    """
    block = MODELS[model]
    paths = [block.get("weights", ""), block.get("path", "")]
    if block["source"] == "onnx":
        paths.append(block.get("name", ""))
    return list(
        dict.fromkeys(
            p
            for p in paths
            if p in PRODUCED_MODEL_FILES
            or (p not in ("", "random", "pretrained", "file") and Path(p).is_file())
        )
    )


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
    """The listing keys of a set, defaults filled in and extensions written one way (lower
    case, no dot), so that `[PNG, .jpg]` and `[png, jpg]` rerun nothing (generated sets: the
    defaults)."""
    block = STIMULI[stimset]
    if block["source"] != "folder":
        return dict(FOLDER_DEFAULTS)
    options = {key: block.get(key, default) for key, default in FOLDER_DEFAULTS.items()}
    try:
        options["extensions"] = list(normalise_extensions(options["extensions"]))
    except StimulusError as exc:
        raise WorkflowError(f"stimuli.{stimset}.{exc}") from None
    return options


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
    """Size and mtime of a folder set's labels.csv (or "none"), a param of the clustering job,
    which scores the labels: it reruns when the labels are edited in place."""
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


def cluster_outputs(folder):
    """The aggregate outputs of one (set, model, parameter set) folder, by output name."""
    return {key: f"{folder}/{name}" for key, name in CLUSTER_OUTPUTS.items()}


def cluster_paths_outputs():
    """The outputs of the cluster_paths rule: the layer files' folder and the aggregated files
    (the quality table also goes into the Snakemake report)."""
    folder = "results/clusters/{stimset}/{model}/{pset}"
    out = {
        "layers": directory(f"{folder}/{LAYER_CLUSTERS_DIR}"),
        **cluster_outputs(folder),
    }
    out["quality"] = report(
        out["quality"],
        caption="../report/quality.rst",
        category="Quality",
        subcategory="{stimset}",
        labels={"model": "{model}", "parameter set": "{pset}"},
    )
    return out


def get_model_layers(wildcards):
    """The layer names of the model, in network order."""
    return model_layers(wildcards.model)


def get_clustering_runtime(wildcards):
    """Minutes a cluster_paths job may take on a cluster: an hour per layer (layers run in
    turn; raise it per rule with set-resources for very large sets)."""
    return 60 * len(model_layers(wildcards.model))


def gradient_file(stimset, model):
    """A model's gradient file on a set (rule compute_gradients), which a parameter set with
    `input: activations_x_gradients` reads."""
    return f"results/gradients/{stimset}/{model}.h5"


def get_cluster_inputs(wildcards):
    """The activation file and the stimulus folder (its labels.csv is scored), plus the
    gradient file when the parameter set asks for it."""
    inputs = {
        "activations": activation_file(wildcards.stimset, wildcards.model),
        "stimuli": stimulus_dir(wildcards.stimset),
    }
    if PARAMETER_SETS[wildcards.pset].get("input") == "activations_x_gradients":
        inputs["gradients"] = gradient_file(wildcards.stimset, wildcards.model)
    return inputs


def get_parameter_set(wildcards):
    return PARAMETER_SETS[wildcards.pset]


def applies(pset, stimset, model):
    """Whether parameter set `pset` clusters `model` on `stimset` (its `models:`/`stimuli:`)."""
    scope = PARAMETER_SET_SCOPE[pset]
    return stimset in scope["stimuli"] and model in scope["models"]


def cluster_folders():
    """Every (set, model, parameter set) folder the run makes, in config order."""
    return [
        f"results/clusters/{stimset}/{model}/{pset}"
        for stimset in STIMULI
        for model in MODELS
        for pset in PARAMETER_SETS
        if applies(pset, stimset, model)
    ]


def _gradient_settings(model):
    """A model's gradients block (its own, else extraction.gradients) in canonical form, and
    the stimulus sets it applies to (its `stimuli:`, default all); (None, []) without one.
    """
    block = MODELS[model]
    own = "gradients" in block
    settings = block["gradients"] if own else EXTRACTION_GRADIENTS
    if settings is None or settings is False:
        return None, []
    where = f"models.{model}.gradients" if own else "extraction.gradients"
    if settings is True:
        settings = {}
    names = settings.get("stimuli")
    unknown = [n for n in names or [] if n not in STIMULI]
    if unknown:
        raise WorkflowError(
            f"{where}.stimuli: no stimulus set {', '.join(unknown)} in the config "
            f"(configured: {', '.join(STIMULI)})"
        )
    stimsets = [s for s in STIMULI if names is None or s in names]
    if block["source"] == "onnx":
        raise WorkflowError(
            f"{where}: model {model!r} runs in onnxruntime (source: onnx), which has no backward "
            "pass here; compute the gradients of the same network built in torch, or set "
            f"models.{model}.gradients: false"
        )
    layers = [] if block["layers"] == "auto" else block["layers"]
    probes = [
        entry["as"] if "as" in entry else entry["name"]
        for entry in layers
        if parse_probe(split_head(entry["name"])[0])
    ]
    if probes:
        raise WorkflowError(probe_gradients_message(where, probes))
    computed = {k: v for k, v in settings.items() if k != "stimuli"}
    try:
        return GradientOptions.from_config(computed, where).to_config(), stimsets
    except ModelError as exc:
        raise WorkflowError(str(exc)) from None


GRADIENTS, GRADIENT_SETS = {}, {}
for _model in MODELS:
    GRADIENTS[_model], GRADIENT_SETS[_model] = _gradient_settings(_model)
GRADIENT_MODELS = [
    model for model, settings in GRADIENTS.items() if settings is not None
]


def gradient_files():
    """Every gradient file the run makes: (set, model) with the model's gradients on."""
    return [
        gradient_file(stimset, model)
        for stimset in STIMULI
        for model in GRADIENT_MODELS
        if stimset in GRADIENT_SETS[model]
    ]


def check_gradient_inputs():
    """Every model a parameter set clusters activations x gradients of stores them."""
    for pset, params in PARAMETER_SETS.items():
        if params["input"] != "activations_x_gradients":
            continue
        for model in PARAMETER_SET_SCOPE[pset]["models"]:
            settings = GRADIENTS[model]
            where = f"clustering.parameter_sets.{pset}: input activations_x_gradients"
            if settings is None:
                raise WorkflowError(
                    f"{where} needs the gradients of model {model!r}, which has none; add "
                    f"gradients: {{target: predicted}} to models.{model} (docs/gradients.md), "
                    "or restrict the parameter set to other models with models: [...]"
                )
            if ACTIVATION_X_GRADIENT not in settings["store"]:
                raise WorkflowError(
                    f"{where} clusters the stored activation x gradient, but "
                    f"models.{model}.gradients.store is {settings['store']}; add "
                    f"{ACTIVATION_X_GRADIENT}"
                )
            missing = [
                s
                for s in PARAMETER_SET_SCOPE[pset]["stimuli"]
                if s not in GRADIENT_SETS[model]
            ]
            if missing:
                raise WorkflowError(
                    f"{where} needs the gradients of model {model!r} on {', '.join(missing)}, "
                    f"outside models.{model}.gradients.stimuli; add them there, or restrict "
                    "the parameter set with stimuli: [...]"
                )


check_gradient_inputs()


def get_gradient_settings(wildcards):
    return GRADIENTS[wildcards.model]


def get_parameter_set_run(wildcards):
    return SimpleNamespace(**PARAMETER_SET_RUN[wildcards.pset])


def get_model_params(wildcards):
    """A model's canonical block, without what only concerns scheduling (resources) and
    without its gradients block (the gradient job's own parameter)."""
    params = model_params(MODELS[wildcards.model])
    return {k: v for k, v in params.items() if k != "gradients"}


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
    folders = cluster_folders()
    inputs = {
        kind: [cluster_outputs(folder)[kind] for folder in folders]
        for kind in ("metadata", "quality", "paths")
    }
    inputs["similarity"] = similarity_report_inputs()
    inputs["attention"] = attention_summaries()
    return inputs


def attention_summaries():
    """The attention summary of every (stimulus set, model with metrics)."""
    return [
        f"results/transformer/{stimset}/{model}/summary.json"
        for stimset in STIMULI
        for model in ATTENTION_MODELS
    ]


def attention_site_inputs():
    """What the site's transformer page reads: the attention summary of every (stimulus set,
    model with metrics) and, for the class token's attention over example images, the
    activation file of each such model."""
    return attention_summaries() + [
        activation_file(stimset, model)
        for stimset in STIMULI
        for model in ATTENTION_MODELS
    ]


def get_final_output():
    targets = ["results/report.md", *site_targets(), *attention_summaries()]
    for stimset in STIMULI:
        targets.append(f"results/activations/{PREFIX}_{stimset}.h5")
    targets += gradient_files()
    for folder in cluster_folders():
        targets += list(cluster_outputs(folder).values())
    targets += similarity_outputs()
    return targets


# The results site (workflow/rules/site.smk, docs/site.md).
SITE = canonical(config["site"], SCHEMA["properties"]["site"], SCHEMA)
THUMBNAIL_OPTIONS = {k: v for k, v in SITE.items() if k.startswith("thumbnail_")}
SITE_RUN_FILES = ("metadata", "quality", "paths", "transitions", "distances")


def site_runs():
    """Every (stimulus set, model, parameter set) the site shows, in config order."""
    return [
        [s, m, p]
        for s in STIMULI
        for m in MODELS
        for p in PARAMETER_SETS
        if applies(p, s, m)
    ]


def site_targets():
    return ["results/site"] if SITE["enabled"] else []


def get_site_inputs(wildcards):
    """Thumbnails of every set, the aggregated files and distances of every run, and the
    similarity outputs (the similarity page) when similarity is enabled.

    A later analysis whose page reads its own outputs adds them here (docs/site.md).
    """
    return {
        "thumbnails": [f"{THUMBNAILS}/{stimset}" for stimset in STIMULI],
        "transformer": attention_site_inputs(),
        "runs": [
            path
            for stimset, model, pset in site_runs()
            for path in (
                cluster_outputs(f"results/clusters/{stimset}/{model}/{pset}")[k]
                for k in SITE_RUN_FILES
            )
        ],
        "similarity": similarity_site_inputs(),
    }


# --------------------------------------------------------------------------- similarity
# Representational similarity (workflow/rules/similarity.smk, docs/similarity.md).

SIMILARITY = canonical(config["similarity"], SCHEMA["properties"]["similarity"], SCHEMA)
SIMILARITY_RUN_KEYS = ("block_mb", "memory_mb")
RDM_KEYS = ("distances", "max_stimuli", "seed", "balance_by", "max_conditions")


def similarity_enabled():
    return bool(SIMILARITY["enabled"])


def similarity_params(rule_name):
    """The parameters of compute_rdms (only what RDMs depend on) and of compare_layers
    (the rest of the block); memory settings are run settings (SIMILARITY_RUN)."""
    block = {k: v for k, v in SIMILARITY.items() if k not in SIMILARITY_RUN_KEYS}
    block.pop("enabled")
    if rule_name == "compute_rdms":
        return {k: v for k, v in block.items() if k in RDM_KEYS}
    return block


SIMILARITY_RUN = SimpleNamespace(**{k: SIMILARITY[k] for k in SIMILARITY_RUN_KEYS})


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


def similarity_site_inputs():
    """What the site's similarity page reads: each set's comparison and its models' RDMs."""
    if not similarity_enabled():
        return []
    return [
        path
        for stimset in STIMULI
        for path in (
            f"results/similarity/{stimset}/compare.h5",
            *(f"results/similarity/{stimset}/{model}/rdms.h5" for model in MODELS),
        )
    ]
