"""One entry per workflow rule: :func:`compute_rdms` and :func:`compare_layers`.

Plus :func:`compare_files`, the two-file comparison behind ``actpipe compare``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_output
from ..names import no_such
from .cka import LayerInput, cka_matrix
from .compare import RDMCollection
from .distances import check_distances, condensed_subset, n_pairs
from .errors import NotFound
from .files import (
    Comparison,
    LayerTable,
    RDMFile,
    RDMWriter,
    read_comparison,
    write_comparison,
    write_tsv,
)
from .labels import StimulusLabels
from .options import SimilarityOptions
from .rdm import condition_rdms, stimulus_rdms
from .subsample import balanced_subsample
from .theory import theory_rdm

log = logging.getLogger("actpipe.similarity")
PathLike = str | os.PathLike[str]


def _options(options: SimilarityOptions | Mapping[str, Any] | None) -> SimilarityOptions:
    if isinstance(options, SimilarityOptions):
        return options
    return SimilarityOptions.from_config(options)


def _open_model(path: PathLike, model: str | None) -> tuple[Any, Any]:
    from ..storage.reader import load_lazy_activations

    acts = load_lazy_activations(path, cache_bytes=0)
    names = list(acts)
    if model is None:
        if len(names) != 1:
            acts.close()
            raise ValueError(
                f"{path}: holds {len(names)} models ({', '.join(names)}); choose one with "
                "--model / model="
            )
        model = names[0]
    if model not in names:
        acts.close()
        raise NotFound(no_such("model", model, names, str(path), "`actpipe inspect FILE`"))
    return acts, acts[model]


def _choose_layers(lazy: Any, layers: Sequence[str] | None, path: PathLike) -> list[str]:
    available = lazy.layers
    if not layers:
        return available
    for layer in layers:
        if layer not in available:
            raise NotFound(
                no_such(
                    "layer",
                    layer,
                    available,
                    f"{path} (model {lazy.name!r})",
                    "`actpipe inspect FILE --show-layers` lists them",
                )
            )
    return list(layers)


def compute_rdms(
    activations: PathLike,
    output: PathLike,
    *,
    model: str | None = None,
    stimuli: PathLike | None = None,
    options: SimilarityOptions | Mapping[str, Any] | None = None,
    layers: Sequence[str] | None = None,
    stimulus_set: str | None = None,
    stimulus_ids: Sequence[str] | None = None,
) -> Path:
    """Rule ``compute_rdms``: the RDMs of every layer of one model, written to ``rdms.h5``.

    ``stimuli`` is the stimulus folder (or its ``labels.csv``): each label column gets
    condition RDMs, and the stimulus RDM's subsample (above ``max_stimuli``) is balanced
    over ``balance_by`` (default: the first label column). ``stimulus_ids`` restricts
    everything to those stimuli. Memory: the condensed RDMs plus the tiles of one layer.
    """
    options = _options(options)
    started = time.perf_counter()
    acts, lazy = _open_model(activations, model)
    try:
        model = lazy.name
        where = f"{activations} (model {model!r})"
        chosen = _choose_layers(lazy, layers, activations)
        n_rep = lazy.n_replicates
        check_distances(list(options.distances), n_rep, where)
        all_ids = lazy.stimulus_ids
        labels = StimulusLabels.read(stimuli, all_ids)
        if stimulus_ids is not None:
            base = np.sort(lazy.rows(list(stimulus_ids)))
        else:
            base = np.arange(len(all_ids), dtype=np.int64)
        if len(base) < 2:
            raise ValueError(f"{where}: at least 2 stimuli are needed, got {len(base)}")
        balance_by = options.balance_by or (labels.names[0] if labels.names else None)
        if balance_by is not None and balance_by not in labels.columns:
            raise ValueError(
                no_such(
                    "label",
                    balance_by,
                    labels.names,
                    "similarity.balance_by",
                    f"label columns of {labels.source or 'the set (no labels.csv)'}",
                )
            )
        classes = None
        if balance_by is not None:
            column = labels.columns[balance_by]
            classes = [column[r] for r in base]
        sub = balanced_subsample(len(base), options.max_stimuli, options.seed, classes, balance_by)
        rows = base[sub.rows]
        if sub.subsampled:
            log.info(
                "%s: stimulus RDMs on a subsample of %d of %d stimuli (seed %d, balanced by %s)",
                where,
                len(rows),
                len(base),
                options.seed,
                balance_by,
            )
        in_base = np.zeros(len(all_ids), dtype=bool)
        in_base[base] = True
        conditions: dict[str, tuple[list[str], np.ndarray]] = {}
        skipped: dict[str, str] = {}
        for name in labels.names:
            values, codes = labels.conditions(name)
            codes = np.where(in_base, codes, -1)
            present = sorted(set(codes[codes >= 0].tolist()))
            if len(present) < 2:
                skipped[name] = f"{len(present)} value(s)"
                continue
            if len(present) > options.max_conditions:
                skipped[name] = f"{len(present)} values > max_conditions {options.max_conditions}"
                continue
            remap = -np.ones(len(values), dtype=np.int64)
            remap[present] = np.arange(len(present))
            kept = [values[i] for i in present]
            conditions[name] = (kept, np.where(codes >= 0, remap[np.maximum(codes, 0)], -1))
        for name, why in skipped.items():
            log.warning("%s: no condition RDMs for label %r (%s)", where, name, why)
        attrs = {
            "model": model,
            "stimulus_set": stimulus_set or lazy.attrs.get("stimulus_set", ""),
            "activations": str(activations),
            "layers": chosen,
            "distances": list(options.distances),
            "n_replicates": n_rep,
            "feature_dims": {layer: lazy.shape(layer)[2] for layer in chosen},
            "subsample": sub.record(),
            "labels": labels.names,
            "labels_source": labels.source,
            "skipped_labels": skipped,
            "options": options.to_dict(),
        }
        sub_ids = [all_ids[r] for r in rows]
        with (
            atomic_output(output) as tmp,
            RDMWriter(tmp, attrs, sub_ids, rows, labels.subset(rows)) as writer,
        ):
            for name, (values, codes) in conditions.items():
                counts = np.bincount(codes[codes >= 0], minlength=len(values))
                writer.add_conditions(name, values, counts, int((codes[base] < 0).sum()))
            for i, layer in enumerate(chosen):
                t0 = time.perf_counter()
                view = lazy.layer(layer)
                result = stimulus_rdms(view, rows, options.distances, options.block_bytes)
                for distance, rdm in result.values.items():
                    writer.add_stimulus_rdm(
                        layer,
                        distance,
                        rdm,
                        {
                            "feature_dim": view.feature_dim,
                            "undefined_patterns": result.undefined.get(distance, 0),
                        },
                    )
                    if result.undefined.get(distance):
                        log.warning(
                            "%s, layer %r: %d stimuli have a constant pattern; their %s "
                            "dissimilarities are undefined (NaN, left out of comparisons)",
                            where,
                            layer,
                            result.undefined[distance],
                            distance,
                        )
                by_label = condition_rdms(view, conditions, options.distances, options.block_bytes)
                for name, cond in by_label.items():
                    for distance, rdm in cond.rdms.items():
                        writer.add_condition_rdm(
                            name,
                            layer,
                            distance,
                            rdm,
                            {"undefined_patterns": cond.undefined.get(distance, 0)},
                        )
                log.info(
                    "layer %d/%d %r (%d features): %d stimulus RDM(s) over %d stimuli, "
                    "condition RDMs for %d label(s), %.2f s",
                    i + 1,
                    len(chosen),
                    layer,
                    view.feature_dim,
                    len(result.values),
                    len(rows),
                    len(by_label),
                    time.perf_counter() - t0,
                )
            writer.f.attrs["seconds"] = round(time.perf_counter() - started, 3)
    finally:
        acts.close()
    return Path(output)


# --------------------------------------------------------------------------- comparisons


def _depths(n: int) -> list[float]:
    return [0.0] * n if n == 1 else [i / (n - 1) for i in range(n)]


def _shared(lists: Sequence[Sequence[str]]) -> list[str]:
    """Ids present in every list, in the order of the first."""
    common = set(lists[0])
    for other in lists[1:]:
        common &= set(other)
    return [i for i in lists[0] if i in common]


def _cka_inputs(
    activation_files: Sequence[PathLike],
    models: Sequence[str],
    table: LayerTable,
    file_of_row: Sequence[int],
    opened: list,
) -> tuple[list[LayerInput], int]:
    """One :class:`LayerInput` per table row, reading the stimuli all models share."""
    from ..storage.reader import load_lazy_activations

    lazies = []
    for path, model in zip(activation_files, models, strict=True):
        acts = load_lazy_activations(path, cache_bytes=0)
        opened.append(acts)
        if model not in acts:
            raise NotFound(no_such("model", model, list(acts), str(path)))
        lazies.append(acts[model])
    shared = _shared([lazy.stimulus_ids for lazy in lazies])
    rows = [lazy.rows(shared) for lazy in lazies]
    inputs = []
    for k, layer, dim in zip(file_of_row, table.layer, table.feature_dim, strict=True):
        view = lazies[k].layer(layer).replicate_mean()

        def read(positions: np.ndarray, view: Any = view, model_rows: Any = rows[k]) -> Any:
            return view.read(rows=model_rows[positions], dtype=np.float64)

        inputs.append(LayerInput(models[k], layer, dim, read))
    return inputs, len(shared)


def compare_layers(
    rdm_files: Sequence[PathLike],
    activation_files: Sequence[PathLike],
    output: PathLike,
    tsv: PathLike | None = None,
    *,
    options: SimilarityOptions | Mapping[str, Any] | None = None,
    stimulus_set: str | None = None,
    model_names: Sequence[str] | None = None,
) -> Comparison:
    """Rule ``compare_layers``: every (model, layer) pair of a set by RSA and CKA.

    ``rdm_files[i]`` is the ``rdms.h5`` of the model in ``activation_files[i]``. RSA compares
    stimulus RDMs on the stimuli all RDM files share; CKA reads the activation files (replicate
    means) on the stimuli all models share; every layer is also compared with each label's
    theory RDM. Writes ``compare.h5`` (and ``tsv``) and returns what it wrote.
    ``model_names`` renames the models in the outputs (e.g. two files of the same model).
    """
    options = _options(options)
    started = time.perf_counter()
    if len(rdm_files) != len(activation_files):
        raise ValueError(f"{len(rdm_files)} RDM files for {len(activation_files)} activation files")
    if not rdm_files:
        raise ValueError("compare_layers: no models to compare")
    files = [RDMFile(p) for p in rdm_files]
    try:
        models = [f.model for f in files]
        shown = list(model_names) if model_names else models
        if len(set(shown)) != len(shown):
            raise ValueError(
                f"the same model name appears twice among {shown}; give model_names to tell "
                "them apart"
            )
        for f in files:
            missing = [d for d in options.distances if d not in f.distances]
            if missing:
                raise ValueError(
                    f"{f.path}: has no {missing[0]!r} RDMs (it has {', '.join(f.distances)}); "
                    "recompute it with the same similarity.distances"
                )
        table = LayerTable([], [], [], [], [])
        file_of_row: list[int] = []
        for k, (f, name) in enumerate(zip(files, shown, strict=True)):
            dims = f.attrs.get("feature_dims", {})
            for i, (layer, depth) in enumerate(zip(f.layers, _depths(len(f.layers)), strict=True)):
                table.model.append(name)
                table.layer.append(layer)
                table.index.append(i)
                table.depth.append(depth)
                table.feature_dim.append(int(dims.get(layer, 0)))
                file_of_row.append(k)
        id_lists = [f.stimulus_ids for f in files]
        shared = _shared(id_lists)
        if len(shared) < 3:
            raise ValueError(
                f"the RDM files share {len(shared)} stimuli; RSA needs at least 3 "
                f"({', '.join(str(f.path) for f in files)})"
            )
        keep = []
        for ids in id_lists:
            position = {sid: i for i, sid in enumerate(ids)}
            keep.append(np.array([position[s] for s in shared], dtype=np.int64))
        m = n_pairs(len(shared))
        labels = files[0].labels.subset(keep[0])
        theories = {
            name: options.theory_of(name)
            for name in labels.names
            if len(set(labels.columns[name]) - {""}) >= 2
        }
        theory_rdms = {
            name: theory_rdm(labels.columns[name], th, name) for name, th in theories.items()
        }
        scratch = Path(output).parent
        scratch.mkdir(parents=True, exist_ok=True)
        rsa: dict[str, dict[str, np.ndarray]] = {}
        theory: dict[str, dict[str, dict[str, np.ndarray]]] = {name: {} for name in theories}
        for distance in options.distances:
            collections = {
                method: RDMCollection(m, method, options.memory_bytes, scratch, capacity=len(table))
                for method in options.rsa_methods
            }
            try:
                for f, rows in zip(files, keep, strict=True):
                    n_file = len(f.stimulus_ids)
                    for layer in f.layers:
                        rdm = condensed_subset(f.stimulus_rdm(layer, distance), n_file, rows)
                        for coll in collections.values():
                            coll.add(rdm)
                for method, coll in collections.items():
                    rsa.setdefault(distance, {})[method] = coll.matrix()
                    for name, trdm in theory_rdms.items():
                        theory[name].setdefault(distance, {})[method] = coll.against(trdm)
                    log.info("RSA (%s, %s) of %d layers done", distance, method, len(table))
            finally:
                for coll in collections.values():
                    coll.close()
        rsa_seconds = time.perf_counter() - started
    finally:
        for f in files:
            f.close()
    cka = None
    estimator: list[str] = []
    cka_cost: dict[str, Any] = {}
    n_cka = 0
    if options.with_cka:
        opened: list[Any] = []
        try:
            inputs, n_cka = _cka_inputs(activation_files, models, table, file_of_row, opened)
            result = cka_matrix(inputs, n_cka, options.cka_options())
        finally:
            for acts in opened:
                acts.close()
        cka, estimator, cka_cost = result.matrix, result.estimator, result.cost
    comparison = Comparison(
        table,
        cka,
        estimator,
        rsa,
        theory,
        {name: {**th.to_dict(), "description": th.describe()} for name, th in theories.items()},
        shared,
        {
            "stimulus_set": stimulus_set or "",
            "models": shown,
            "distances": list(options.distances),
            "rsa_methods": list(options.rsa_methods),
            "n_rsa_stimuli": len(shared),
            "n_cka_stimuli": n_cka,
            "cka_cost": cka_cost,
            "rdm_files": [str(p) for p in rdm_files],
            "activation_files": [str(p) for p in activation_files],
            "options": options.to_dict(),
            "rsa_seconds": round(rsa_seconds, 3),
            "seconds": round(time.perf_counter() - started, 3),
        },
    )
    write_comparison(output, comparison)
    if tsv is not None:
        write_tsv(tsv, comparison)
    log.info(
        "compared %d layers of %d model(s): %.1f s (RSA %.1f s, CKA %s)",
        len(table),
        len(models),
        time.perf_counter() - started,
        rsa_seconds,
        f"{cka_cost.get('seconds', 0):.1f} s" if cka_cost else "off",
    )
    return comparison


def compare_files(
    file_a: PathLike,
    file_b: PathLike,
    *,
    models_a: Sequence[str] | None = None,
    models_b: Sequence[str] | None = None,
    layers_a: Sequence[str] | None = None,
    layers_b: Sequence[str] | None = None,
    options: SimilarityOptions | Mapping[str, Any] | None = None,
    stimuli: PathLike | None = None,
    output: PathLike | None = None,
    tsv: PathLike | None = None,
) -> tuple[Comparison, list[int], list[int]]:
    """Compare the layers of model(s) in ``file_a`` with those in ``file_b`` on shared stimuli.

    Returns the comparison of all chosen layers and the table rows of A's and B's layers.
    ``output``/``tsv`` keep the ``compare.h5``/TSV (else they go to a temporary folder).
    """
    from ..storage.reader import get_available_images, get_available_models

    options = _options(options)

    def chosen(path: PathLike, models: Sequence[str] | None) -> list[str]:
        available = get_available_models(path)
        if not models:
            return available
        for model in models:
            if model not in available:
                raise NotFound(no_such("model", model, available, str(path)))
        return list(models)

    picks = [(Path(file_a), m, "A") for m in chosen(file_a, models_a)]
    picks += [(Path(file_b), m, "B") for m in chosen(file_b, models_b)]
    shared = _shared([get_available_images(path, m) for path, m, _ in picks])
    if len(shared) < 4:
        raise ValueError(
            f"{file_a} and {file_b} share {len(shared)} stimulus ids; at least 4 are needed"
        )
    names = [m for _, m, _ in picks]
    duplicated = {n for n in names if names.count(n) > 1}
    shown = [f"{side}:{m}" if m in duplicated else m for _, m, side in picks]
    with tempfile.TemporaryDirectory(prefix="actpipe-compare-") as tmp:
        rdm_files = []
        for k, (path, model, side) in enumerate(picks):
            out = Path(tmp) / f"{k}.rdms.h5"
            layers = layers_a if side == "A" else layers_b
            compute_rdms(
                path,
                out,
                model=model,
                stimuli=stimuli,
                options=options,
                layers=layers,
                stimulus_ids=shared,
            )
            rdm_files.append(out)
        h5 = Path(output) if output is not None else Path(tmp) / "compare.h5"
        compare_layers(
            rdm_files,
            [path for path, _, _ in picks],
            h5,
            tsv,
            options=options,
            model_names=shown,
        )
        comparison = read_comparison(h5)
    side_of = {name: side for name, (_, _, side) in zip(shown, picks, strict=True)}
    rows_a = [i for i, m in enumerate(comparison.layers.model) if side_of[m] == "A"]
    rows_b = [i for i, m in enumerate(comparison.layers.model) if side_of[m] == "B"]
    return comparison, rows_a, rows_b


@contextlib.contextmanager
def blas_threads(threads: int | None) -> Iterator[None]:
    """Limit BLAS (and OpenMP) threads to a job's ``threads`` while the block runs."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        yield
        return
    if not threads:
        yield
        return
    with threadpool_limits(limits=int(threads)):
        yield
