"""The data of the results site's similarity page, as plain JSON-ready Python objects.

:func:`page_data` reads one stimulus set's ``compare.h5`` and its models' ``rdms.h5`` and
returns what the page draws: RDM heatmaps per layer with stimuli ordered by a label, the
layer x layer CKA (and RSA) matrix across models, and each label's theory correlation against
layer depth. Values are copied from the files; NaN becomes ``None``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .distances import condensed_subset, square
from .files import RDMFile, read_comparison
from .subsample import balanced_subsample

PathLike = str | os.PathLike[str]


def _clean(values: Any) -> Any:
    """Lists of floats with NaN/inf as None (valid JSON)."""
    array = np.asarray(values, dtype=np.float64)
    out = array.tolist()

    def fix(x: Any) -> Any:
        if isinstance(x, list):
            return [fix(v) for v in x]
        return x if math.isfinite(x) else None

    return fix(out)


def _order(values: Sequence[str], ids: Sequence[str], numeric: bool) -> list[int]:
    """Positions sorted by label value (numerically when numeric; missing last), then id."""

    def key(i: int) -> tuple[Any, ...]:
        v = values[i]
        if v == "":
            return (1, 0.0, "", ids[i])
        return (0, float(v), "", ids[i]) if numeric else (0, 0.0, v, ids[i])

    return sorted(range(len(ids)), key=key)


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
    """Everything the similarity page of one stimulus set shows.

    Returns a dict (shape in docs/similarity.md, "Site data")::

        {"stimulus_set", "distance", "method", "order_by", "n_rsa_stimuli", "n_cka_stimuli",
         "layers": [{"model", "layer", "index", "depth", "feature_dim"}, ...],
         "cka": {"matrix": N x N, "estimator": [...], "cost": {...}} | None,
         "rsa": {"matrix": N x N, "distance", "method"} | None,
         "rdms": [{"model", "layer", "depth", "stimulus_ids", "order_values", "matrix"}],
         "condition_rdms": [{"model", "layer", "label", "values", "counts", "matrix"}],
         "theory": [{"label", "theory", "series": [{"model", "layers", "depth",
                                                    "values"}]}]}

    ``rdms[*].matrix`` is square, over at most ``max_heatmap`` stimuli (a seeded subsample
    balanced over ``order_by``) sorted by their ``order_by`` value (default: the first label).
    """
    comparison = read_comparison(compare_path)
    distance = distance or comparison.attrs["distances"][0]
    methods = comparison.attrs.get("rsa_methods") or []
    method = method or (methods[0] if methods else None)
    t = comparison.layers
    out: dict[str, Any] = {
        "stimulus_set": comparison.attrs.get("stimulus_set", ""),
        "distance": distance,
        "method": method,
        "order_by": None,
        "n_rsa_stimuli": len(comparison.rsa_stimulus_ids),
        "n_cka_stimuli": comparison.attrs.get("n_cka_stimuli"),
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
        "rsa": None,
        "rdms": [],
        "condition_rdms": [],
        "theory": [],
    }
    if comparison.cka is not None:
        out["cka"] = {
            "matrix": _clean(comparison.cka),
            "estimator": list(comparison.cka_estimator),
            "cost": comparison.attrs.get("cka_cost", {}),
        }
    if method and method in comparison.rsa.get(distance, {}):
        out["rsa"] = {
            "matrix": _clean(comparison.rsa[distance][method]),
            "distance": distance,
            "method": method,
        }
    for label, by_distance in comparison.theory.items():
        values = by_distance.get(distance, {}).get(method)
        if values is None:
            continue
        series = []
        for model in t.models:
            rows = t.of_model(model)
            series.append(
                {
                    "model": model,
                    "layers": [t.layer[i] for i in rows],
                    "depth": [float(t.depth[i]) for i in rows],
                    "values": _clean([values[i] for i in rows]),
                }
            )
        out["theory"].append(
            {"label": label, "theory": comparison.theories.get(label, {}), "series": series}
        )
    for path in rdm_paths:
        with RDMFile(path) as rdms:
            labels = rdms.labels
            ids = labels.stimulus_ids
            label = order_by or (labels.names[0] if labels.names else None)
            out["order_by"] = label
            values = labels.columns[label] if label else [""] * len(ids)
            sub = balanced_subsample(len(ids), max_heatmap, seed, values if label else None)
            keep_ids = [ids[r] for r in sub.rows]
            kept_values = [values[r] for r in sub.rows]
            numeric = bool(label) and labels.subset(sub.rows).is_numeric(label)
            order = _order(kept_values, keep_ids, numeric)
            positions = np.asarray(sub.rows)[order]
            for layer in rdms.layers:
                rdm = condensed_subset(rdms.stimulus_rdm(layer, distance), len(ids), positions)
                out["rdms"].append(
                    {
                        "model": rdms.model,
                        "layer": layer,
                        "depth": float(rdms.layers.index(layer) / max(1, len(rdms.layers) - 1)),
                        "stimulus_ids": [ids[p] for p in positions],
                        "order_values": [values[p] for p in positions],
                        "matrix": _clean(square(rdm)),
                    }
                )
                for cond_label in rdms.condition_labels:
                    cond_values, counts = rdms.conditions(cond_label)
                    crdm = rdms.condition_rdm(cond_label, layer, distance)
                    out["condition_rdms"].append(
                        {
                            "model": rdms.model,
                            "layer": layer,
                            "label": cond_label,
                            "values": cond_values,
                            "counts": [int(c) for c in counts],
                            "matrix": _clean(square(crdm)),
                        }
                    )
    return out
