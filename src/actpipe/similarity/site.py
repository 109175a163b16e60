"""The data of the results site's similarity page, as plain JSON-ready Python objects.

One stimulus set's page is made of pieces that the site writes as separate files
(``actpipe.site.pages.similarity``) and that :func:`page_data` also assembles in one dict:

- :func:`comparison_data`: everything of ``compare.h5`` the page draws: the layer table, the
  layer x layer CKA and RSA matrices, each label's theory correlation of every layer for every
  distance and RSA method, and the best layer of each model per label;
- :func:`heatmap_stimuli`: the stimuli an RDM heatmap shows (all of the RDM's, or a seeded
  subsample balanced over a label), their label values and their order by each label;
- :func:`stimulus_heatmap`, :func:`condition_heatmap`: one layer's RDM, condensed.

Values are copied from the files; NaN becomes ``None``; ``digits`` rounds to that many
significant digits (the site's heatmaps, whose colours and hover boxes need no more).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .distances import square
from .files import Comparison, RDMFile, read_comparison
from .report import best_theory_layers
from .subsample import balanced_subsample

PathLike = str | os.PathLike[str]


def finite(values: Any, digits: int | None = None) -> Any:
    """Nested lists of floats with NaN/inf as None (valid JSON), maybe rounded to ``digits``
    significant digits."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0:
        x = float(array)
        return (float(f"{x:.{digits}g}") if digits else x) if math.isfinite(x) else None
    if array.ndim > 1:
        return [finite(row, digits) for row in array]
    if digits:
        return [float(f"{x:.{digits}g}") if math.isfinite(x) else None for x in array.tolist()]
    return [x if math.isfinite(x) else None for x in array.tolist()]


def _order(values: Sequence[str], ids: Sequence[str], numeric: bool) -> list[int]:
    """Positions sorted by label value (numerically when numeric; missing last), then id."""

    def key(i: int) -> tuple[Any, ...]:
        v = values[i]
        if v == "":
            return (1, 0.0, "", ids[i])
        return (0, float(v), "", ids[i]) if numeric else (0, 0.0, v, ids[i])

    return sorted(range(len(ids)), key=key)


def best_layers(
    comparison: Comparison, label: str, distance: str, method: str
) -> list[dict[str, Any]]:
    """Per model (in order): the layer whose RDM matches ``label``'s theory RDM best
    (``actpipe.similarity.report.best_theory_layers``, as in the report) and its value;
    models without a finite value are left out."""
    t = comparison.layers
    found = best_theory_layers(comparison, label, distance, method)
    out = []
    for model in t.models:
        if model not in found:
            continue
        layer, value = found[model]
        rows = t.of_model(model)
        row = next(i for i in rows if t.layer[i] == layer)
        out.append(
            {
                "model": model,
                "layer": layer,
                "row": row,
                "index": int(t.index[row]),
                "n_layers": len(rows),
                "depth": float(t.depth[row]),
                "value": value,
            }
        )
    return out


def comparison_data(compare_path: PathLike) -> dict[str, Any]:
    """What the page draws from one set's ``compare.h5``::

        {"stimulus_set", "distances", "methods", "n_rsa_stimuli", "n_cka_stimuli",
         "models": [...], "layers": [{"model", "layer", "index", "depth", "feature_dim"}],
         "cka": {"matrix": N x N, "estimator": [N], "cost": {...}} | None,
         "rsa": {distance: {method: N x N}},
         "theory": [{"label", "theory": {"kind", "period", "description"},
                     "values": {distance: {method: [N]}},
                     "best": {distance: {method: [best_layers rows]}}}]}

    ``distances`` and ``methods`` are in configuration order (the first ones are those the
    report uses); rows and columns of the matrices are ``layers`` (models in configuration
    order, layers in network order).
    """
    comparison = read_comparison(compare_path)
    t = comparison.layers
    distances = list(comparison.attrs.get("distances") or comparison.rsa)
    methods = list(comparison.attrs.get("rsa_methods") or [])
    out: dict[str, Any] = {
        "stimulus_set": comparison.attrs.get("stimulus_set", ""),
        "distances": distances,
        "methods": methods,
        "n_rsa_stimuli": len(comparison.rsa_stimulus_ids),
        "n_cka_stimuli": comparison.attrs.get("n_cka_stimuli"),
        "models": t.models,
        "layers": [
            {
                "model": t.model[i],
                "layer": t.layer[i],
                "index": int(t.index[i]),
                "depth": float(t.depth[i]),
                "feature_dim": int(t.feature_dim[i]),
            }
            for i in range(len(t))
        ],
        "cka": None,
        "rsa": {
            distance: {method: finite(matrix) for method, matrix in by_method.items()}
            for distance, by_method in comparison.rsa.items()
        },
        "theory": [],
    }
    if comparison.cka is not None:
        out["cka"] = {
            "matrix": finite(comparison.cka),
            "estimator": list(comparison.cka_estimator),
            "cost": comparison.attrs.get("cka_cost", {}),
        }
    for label, by_distance in comparison.theory.items():
        out["theory"].append(
            {
                "label": label,
                "theory": comparison.theories.get(label, {}),
                "values": {
                    d: {m: finite(v) for m, v in by_method.items()}
                    for d, by_method in by_distance.items()
                },
                "best": {
                    d: {m: best_layers(comparison, label, d, m) for m in by_method}
                    for d, by_method in by_distance.items()
                },
            }
        )
    return out


def heatmap_stimuli(
    rdms: RDMFile, max_heatmap: int = 200, seed: int = 0, balance_by: str | None = None
) -> dict[str, Any]:
    """The stimuli an RDM heatmap of ``rdms`` shows, and how to order them by each label::

        {"rows": [h] (increasing positions in the RDM's stimuli), "stimulus_ids": [h],
         "labels": {label: [h values]}, "numeric": {label: bool},
         "order": {label: [h positions into the lists above, sorted by the label's value
                           (numerically for numeric labels; no value last), then by id]},
         "subsample": Subsample.record() of the heatmap, "rdm_subsample": the RDM's own}

    All the RDM's stimuli when there are at most ``max_heatmap``; otherwise a seeded
    subsample balanced over ``balance_by`` (default: the first label).
    """
    labels = rdms.labels
    ids = labels.stimulus_ids
    balance = balance_by or (labels.names[0] if labels.names else None)
    classes = labels.columns[balance] if balance else None
    sub = balanced_subsample(len(ids), max_heatmap, seed, classes, balance)
    kept = labels.subset(sub.rows)
    numeric = {name: kept.is_numeric(name) for name in kept.names}
    return {
        "rows": [int(r) for r in sub.rows],
        "stimulus_ids": kept.stimulus_ids,
        "labels": kept.columns,
        "numeric": numeric,
        "order": {
            name: _order(kept.columns[name], kept.stimulus_ids, numeric[name])
            for name in kept.names
        },
        "subsample": sub.record(),
        "rdm_subsample": rdms.attrs.get("subsample"),
    }


def stimulus_heatmap(
    rdms: RDMFile, layer: str, distance: str, rows: Sequence[int], digits: int | None = None
) -> list[float | None]:
    """The condensed stimulus RDM of ``layer`` over the stimuli at ``rows`` (increasing, as
    :func:`heatmap_stimuli` gives them): pairs ``i < j`` row by row."""
    return finite(rdms.stimulus_rdm_subset(layer, distance, rows), digits)


def condition_heatmap(
    rdms: RDMFile, label: str, layer: str, distance: str, digits: int | None = None
) -> dict[str, Any]:
    """The condensed condition RDM of ``label`` at ``layer``, its conditions and counts."""
    values, counts = rdms.conditions(label)
    return {
        "values": values,
        "counts": [int(c) for c in counts],
        "rdm": finite(rdms.condition_rdm(label, layer, distance), digits),
    }


def page_data(
    compare_path: PathLike,
    rdm_paths: Sequence[PathLike],
    *,
    distance: str | None = None,
    method: str | None = None,
    order_by: str | None = None,
    max_heatmap: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Everything the similarity page of one stimulus set shows, for one distance, RSA method
    and ordering label, in one dict (shape in docs/similarity.md, "Site data")::

        {"stimulus_set", "distance", "method", "order_by", "n_rsa_stimuli", "n_cka_stimuli",
         "layers": [{"model", "layer", "index", "depth", "feature_dim"}, ...],
         "cka": {"matrix": N x N, "estimator": [...], "cost": {...}} | None,
         "rsa": {"matrix": N x N, "distance", "method"} | None,
         "rdms": [{"model", "layer", "depth", "stimulus_ids", "order_values", "matrix"}],
         "condition_rdms": [{"model", "layer", "label", "values", "counts", "matrix"}],
         "theory": [{"label", "theory", "series": [{"model", "layers", "depth",
                                                    "values"}]}],
         "best": [{"label", "layers": [best_layers rows]}]}

    ``rdms[*].matrix`` is square, over at most ``max_heatmap`` stimuli (a seeded subsample
    balanced over ``order_by``) sorted by their ``order_by`` value (default: the first label).
    """
    data = comparison_data(compare_path)
    distance = distance or data["distances"][0]
    method = method or (data["methods"][0] if data["methods"] else None)
    layers = data["layers"]
    out: dict[str, Any] = {
        "stimulus_set": data["stimulus_set"],
        "distance": distance,
        "method": method,
        "order_by": None,
        "n_rsa_stimuli": data["n_rsa_stimuli"],
        "n_cka_stimuli": data["n_cka_stimuli"],
        "layers": layers,
        "cka": data["cka"],
        "rsa": None,
        "rdms": [],
        "condition_rdms": [],
        "theory": [],
        "best": [],
    }
    if method and method in data["rsa"].get(distance, {}):
        matrix = data["rsa"][distance][method]
        out["rsa"] = {"matrix": matrix, "distance": distance, "method": method}
    for entry in data["theory"]:
        values = entry["values"].get(distance, {}).get(method)
        if values is None:
            continue
        series = []
        for model in data["models"]:
            rows = [i for i, row in enumerate(layers) if row["model"] == model]
            series.append(
                {
                    "model": model,
                    "layers": [layers[i]["layer"] for i in rows],
                    "depth": [layers[i]["depth"] for i in rows],
                    "values": [values[i] for i in rows],
                }
            )
        out["theory"].append({"label": entry["label"], "theory": entry["theory"], "series": series})
        out["best"].append({"label": entry["label"], "layers": entry["best"][distance][method]})
    for path in rdm_paths:
        with RDMFile(path) as rdms:
            names = rdms.labels.names
            label = order_by or (names[0] if names else None)
            out["order_by"] = label
            shown = heatmap_stimuli(rdms, max_heatmap, seed, label)
            order = shown["order"][label] if label else list(range(len(shown["rows"])))
            ids = [shown["stimulus_ids"][k] for k in order]
            order_values = [shown["labels"][label][k] for k in order] if label else [""] * len(ids)
            for i, layer in enumerate(rdms.layers):
                condensed = rdms.stimulus_rdm_subset(layer, distance, shown["rows"])
                out["rdms"].append(
                    {
                        "model": rdms.model,
                        "layer": layer,
                        "depth": float(i / max(1, len(rdms.layers) - 1)),
                        "stimulus_ids": ids,
                        "order_values": order_values,
                        "matrix": finite(square(condensed)[np.ix_(order, order)]),
                    }
                )
                for cond_label in rdms.condition_labels:
                    values, counts = rdms.conditions(cond_label)
                    out["condition_rdms"].append(
                        {
                            "model": rdms.model,
                            "layer": layer,
                            "label": cond_label,
                            "values": values,
                            "counts": [int(c) for c in counts],
                            "matrix": finite(
                                square(rdms.condition_rdm(cond_label, layer, distance))
                            ),
                        }
                    )
    return out
