"""Entry points of the workflow's rules: one function per rule, taking config blocks and paths.

Each ``workflow/scripts/*.py`` calls exactly one of these, so everything a rule does is
reachable from tests and from Python without Snakemake.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def logging_to(path: str | os.PathLike[str] | None) -> Iterator[None]:
    """Send logging, warnings, progress bars and tracebacks of a rule to its log file."""
    if path is None:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1, encoding="utf-8") as log_file:
        old_stderr = sys.stderr
        sys.stderr = log_file
        handler = logging.StreamHandler(log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        logging.captureWarnings(True)
        try:
            yield
        except BaseException:
            logging.getLogger("actpipe").exception("rule failed")
            raise
        finally:
            root.removeHandler(handler)
            sys.stderr = old_stderr


def materialise_set(spec: dict[str, Any], out_dir: str | os.PathLike[str]) -> None:
    """Rule ``materialise_stimuli``: write a generated set as PNG folder + labels.csv."""
    from .stimuli import materialise_stimuli

    stimuli = materialise_stimuli(spec, out_dir)
    logging.getLogger(__name__).info("wrote %d stimuli to %s", len(stimuli), out_dir)


def extract(
    set_name: str,
    stimulus_dir: str | os.PathLike[str],
    model_name: str,
    model_block: dict[str, Any],
    extraction: dict[str, Any],
    storage: dict[str, Any],
    output: str | os.PathLike[str],
    threads: int | None = None,
    rows: Sequence[int] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> None:
    """Rule ``extract_activations``: one model on one stimulus set (``threads`` for torch).

    ``rows`` = ``[start, stop)`` extracts only those stimuli (one shard of the set).
    ``cache_dir`` holds instrumented ONNX models.
    """
    import torch

    from .extraction import ExtractionOptions, extract_activations
    from .models import ModelSpec
    from .stimuli import load_stimulus_folder

    spec = ModelSpec.from_config(model_name, model_block)
    options = ExtractionOptions.from_config(extraction, storage)
    if threads:
        torch.set_num_threads(int(threads))
    stimuli = load_stimulus_folder(stimulus_dir)
    if rows is not None:
        stimuli = stimuli.subset(int(rows[0]), int(rows[1]))
    extract_activations(
        spec, stimuli, output, options, stimulus_set=set_name, cache_dir=cache_dir, threads=threads
    )


def merge(
    shard_files: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], model: str
) -> None:
    """Rule ``merge_shards``: the per-model file of a sharded set, as virtual datasets."""
    from .storage import merge_shards

    merge_shards(shard_files, output, model)


def join(
    models: Sequence[str], files: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str]
) -> None:
    """Rule ``join_activations``: one file per stimulus set, linking every model's file."""
    from .storage import join_models

    join_models(output, dict(zip(models, files, strict=True)))


def cluster(
    activations: str | os.PathLike[str],
    model: str,
    layer: str,
    parameter_set: str,
    params: dict[str, Any],
    output: str | os.PathLike[str],
    gradients: str | os.PathLike[str] | None = None,
) -> None:
    """Rule ``cluster_layer``: one layer with one parameter set (``gradients``: the gradient
    file, for parameter sets with ``input: activations_x_gradients``)."""
    from .clustering import cluster_layer

    cluster_layer(activations, model, layer, params, output, parameter_set, gradients)


def aggregate(
    layer_files: Sequence[str | os.PathLike[str]],
    activations: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    context: dict[str, Any],
    stimuli: str | os.PathLike[str] | None = None,
    centroids_json_max_values: int | None = None,
) -> None:
    """Rule ``aggregate_clusters``: paths, transitions, centroids, metadata and quality table
    of one (set, model, parameter set); ``stimuli`` is the folder whose labels.csv is scored."""
    from .aggregation import CENTROIDS_JSON_MAX_VALUES, aggregate_clusters

    limit = (
        CENTROIDS_JSON_MAX_VALUES
        if centroids_json_max_values is None
        else int(centroids_json_max_values)
    )
    # The activation files' checksums are shared by the parameter sets' jobs of a run.
    cache = Path(".snakemake") / "actpipe" / "sha256"
    aggregate_clusters(layer_files, out_dir, activations, stimuli, context, limit, cache)


def report(
    metadata_files: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    similarity_files: Sequence[str | os.PathLike[str]] = (),
) -> None:
    """Rule ``report``: one Markdown summary of every (set, model, parameter set) folder,
    plus the similarity section of the ``compare.h5`` files given."""
    from .report import write_report

    write_report([Path(m).parent for m in metadata_files], output, list(similarity_files))


def check_models(models: dict[str, dict[str, Any]], output: str | os.PathLike[str]) -> None:
    """Every model block checked before any extraction (library form of the workflow's check).

    Builds each model without weights (meta device), checks architecture names, python
    entries, ONNX files and tensor names, layer names and local checkpoints (keys and
    shapes). Every problem is reported (one line per model entry), then ``ValueError`` is
    raised. Writes a JSON summary with the resolved layer names of each model.
    """
    from ._io import write_json
    from .models.check import check_entries

    summary, problems = check_entries(models)
    if problems:
        raise ValueError(
            f"{len(problems)} model entr{'y' if len(problems) == 1 else 'ies'} of the config "
            "cannot be used:\n" + "\n".join(f"- {p}" for p in problems)
        )
    write_json(output, summary)


def train_digits(
    weights: str | os.PathLike[str], metadata: str | os.PathLike[str], params: dict[str, Any]
) -> None:
    """Rule ``train_digits_cnn``: the small digits CNN of the default config."""
    from .models.digits_cnn import train_digits_cnn

    train_digits_cnn(weights, metadata, **params)


def export_onnx(
    weights: str | os.PathLike[str],
    metadata: str | os.PathLike[str],
    output: str | os.PathLike[str],
) -> None:
    """Rule ``export_onnx``: the trained digits CNN as ONNX, its layers as named tensors."""
    import json

    from .models import ModelSpec, build_model
    from .models.digits_cnn import LAYERS
    from .models.onnx import export_onnx as export

    info = json.loads(Path(metadata).read_text())
    spec = ModelSpec.from_config(
        "digits_cnn",
        {
            "source": "actpipe",
            "name": info["architecture"],
            "weights": str(weights),
            "layers": list(LAYERS),
        },
    )
    model, _ = build_model(spec)
    export(model, output, int(info["input_size"]), LAYERS)
