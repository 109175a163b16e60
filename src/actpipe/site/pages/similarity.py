"""Similarity: the representational-similarity analysis of each stimulus set.

Exists when ``results/similarity/{set}/compare.h5`` exists for a set the site shows (rules
``compute_rdms`` and ``compare_layers``, docs/similarity.md). Per set, the page shows RDM
heatmaps per model and layer (stimuli ordered by a label; condition RDMs per label), the
layer x layer CKA and RSA matrix across the set's models, each label's theory-RDM
correlation against depth, and the best layer per label and model. Its data, per set, are
pieces of :mod:`actpipe.similarity.site` (every part of a key is a layer key)::

    similarity/{set}/summary                       layers, models, labels, theory values, best
    similarity/{set}/matrix/cka                    the N x N linear CKA matrix
    similarity/{set}/matrix/rsa/{distance}/{method}    an N x N RSA matrix
    similarity/{set}/stimuli/{model}               the heatmap's stimuli: ids, label values,
                                                   order by each label; condition values
    similarity/{set}/rdm/{model}/{distance}/{layer}    condensed RDM over those stimuli
    similarity/{set}/cond/{model}/{label}/{distance}/{layer}   condensed condition RDM

so opening the page loads one set's summary, and each heatmap one layer's file (at most
:data:`MAX_HEATMAP` stimuli or conditions, values to :data:`DIGITS` significant digits).
``build`` also hands the overview, per label, the layer of each model whose RDM matches the
label's theory RDM best.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ...names import layer_key
from ...similarity.files import RDMFile
from ...similarity.site import (
    comparison_data,
    condition_heatmap,
    heatmap_stimuli,
    stimulus_heatmap,
)
from ..tree import ResultsTree
from . import BuildContext, Page, overview_section

log = logging.getLogger(__name__)
FOLDER = "similarity"
COMPARE = "compare.h5"
RDMS = "rdms.h5"
MAX_HEATMAP = 200
"""Most stimuli (a seeded subsample balanced over a label) or conditions a heatmap shows."""
DIGITS = 5
"""Significant digits of heatmap cells (the N x N matrices and theory values are exact)."""
METHOD_NAMES = {"spearman": "Spearman ρ", "pearson": "Pearson r", "kendall_tau_a": "Kendall τ-a"}


def compare_files(tree: ResultsTree) -> dict[str, Path]:
    """The ``compare.h5`` of every stimulus set the site shows that has one, in set order."""
    out = {}
    for name in tree.sets:
        path = tree.optional(FOLDER, name, COMPARE)
        if path is not None and path.is_file():
            out[name] = path
    return out


def _key(*parts: str) -> str:
    return "/".join([FOLDER, *(layer_key(p) for p in parts)])


class Similarity(Page):
    name = "similarity"
    title = "Similarity"

    def exists(self, tree: ResultsTree) -> bool:
        return bool(compare_files(tree))

    def build(self, context: BuildContext) -> dict[str, Any]:
        sets = []
        rows: list[list[Any]] = []
        measure = ""
        for name, path in compare_files(context.tree).items():
            summary = write_set(context, name, path)
            sets.append(
                {
                    "name": name,
                    "key": layer_key(name),
                    "models": [m["name"] for m in summary["models"]],
                    "layers": len(summary["layers"]),
                }
            )
            rows += overview_rows(summary)
            measure = measure or summary_measure(summary)
        if not rows:  # no labels, or no RSA method: nothing to rank
            return {"sets": sets}
        text = (
            "Per label, the layer of each model whose representational dissimilarity matrix "
            f"(RDM) matches the label's theory RDM best ({measure}; 1 = the layer's "
            "dissimilarities follow the theory exactly, 0 = unrelated), best first; click a "
            "layer for its RDM ordered by the label."
        )
        columns = ["set", "label (theory RDM)", "model", "best layer", "depth", "correlation"]
        return {
            "sets": sets,
            "overview": [
                overview_section("Which layer's RDM matches each label best", text, columns, rows)
            ],
        }


def summary_measure(summary: dict[str, Any]) -> str:
    method = METHOD_NAMES.get(summary["method"], summary["method"] or "RSA")
    return f"{method} between the layer's {summary['distance']} RDM and the theory RDM"


def overview_rows(summary: dict[str, Any]) -> list[list[Any]]:
    """The overview's rows of one set: per label, each model's best layer (first distance and
    RSA method, as the report), highest correlation first."""
    out = []
    distance, method = summary["distance"], summary["method"]
    for label in summary["labels"]:
        best = summary["best"].get(label["key"], {}).get(distance, {}).get(method, [])
        theory = label["theory"] or {}
        shown = f"{label['name']} ({theory['description']})" if theory.get("description") else ""
        for row in sorted(best, key=lambda r: -r["value"]):
            model = summary["models"][row["m"]]
            layer = summary["layers"][row["row"]]
            href = (
                f"#/{FOLDER}/{summary['key']}?label={label['key']}&model={model['key']}"
                f"&layer={layer['key']}"
            )
            out.append(
                [
                    summary["set"],
                    shown or label["name"],
                    model["name"],
                    {"text": layer["layer"], "href": href},
                    f"{layer['index'] + 1} of {len(model['layers'])}",
                    row["value"],
                ]
            )
    return out


def write_set(context: BuildContext, stimset: str, path: Path) -> dict[str, Any]:
    """Write one set's data files; return its summary (also written)."""
    data = comparison_data(path)
    layers = data["layers"]
    models = data["models"]
    summary: dict[str, Any] = {
        "set": stimset,
        "key": layer_key(stimset),
        "file": f"{FOLDER}/{stimset}/{COMPARE}",
        "distances": data["distances"],
        "methods": data["methods"],
        "distance": data["distances"][0] if data["distances"] else None,
        "method": data["methods"][0] if data["methods"] else None,
        "nRsa": data["n_rsa_stimuli"],
        "nCka": data["n_cka_stimuli"],
        "maxHeatmap": MAX_HEATMAP,
        "layers": [
            {
                "model": row["model"],
                "layer": row["layer"],
                "key": layer_key(row["layer"]),
                "index": row["index"],
                "depth": row["depth"],
                "dim": row["feature_dim"],
            }
            for row in layers
        ],
        "models": [],
        "labels": [],
        "matrices": {"cka": None, "rsa": {}},
        "theory": {},
        "best": {},
    }
    if data["cka"] is not None:
        key = _key(stimset, "matrix", "cka")
        context.site.data(key, {"matrix": data["cka"]["matrix"]})
        summary["matrices"]["cka"] = key
        summary["estimator"] = data["cka"]["estimator"]
        summary["ckaCost"] = data["cka"]["cost"]
    for distance, by_method in data["rsa"].items():
        for method, matrix in by_method.items():
            key = _key(stimset, "matrix", "rsa", distance, method)
            context.site.data(key, {"matrix": matrix})
            summary["matrices"]["rsa"].setdefault(distance, {})[method] = key
    labels: dict[str, dict[str, Any]] = {}
    model_index = {m: i for i, m in enumerate(models)}
    for entry in data["theory"]:
        key = layer_key(entry["label"])
        labels[entry["label"]] = {"name": entry["label"], "key": key, "theory": entry["theory"]}
        summary["theory"][key] = entry["values"]
        summary["best"][key] = {
            d: {
                m: [
                    {"m": model_index[r["model"]], "row": r["row"], "value": r["value"]}
                    for r in rows
                ]
                for m, rows in by_method.items()
            }
            for d, by_method in entry["best"].items()
        }
    columns: list[str] = []
    for model in models:
        rows = [i for i, row in enumerate(layers) if row["model"] == model]
        entry = {
            "name": model,
            "key": layer_key(model),
            "rows": rows,
            "layers": [layers[i]["layer"] for i in rows],
            "rdm": None,
        }
        rdm_path = context.tree.root / FOLDER / stimset / model / RDMS
        if rdm_path.is_file():
            entry["rdm"] = write_model(context, stimset, model, rdm_path, labels)
            columns += [name for name in entry["rdm"].pop("labels") if name not in columns]
        else:
            log.warning("%s: missing; the similarity page shows no RDM of %s", rdm_path, model)
        summary["models"].append(entry)
    # labels.csv's column order (the RDM files'), then labels known only to compare.h5
    summary["labels"] = [labels[n] for n in dict.fromkeys([*columns, *labels])]
    context.site.data(_key(stimset, "summary"), summary)
    return summary


def write_model(
    context: BuildContext,
    stimset: str,
    model: str,
    path: Path,
    labels: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Write a model's heatmap stimuli and RDM files; return its summary entry. ``labels``
    (name -> entry) gains the model's label columns."""
    with RDMFile(path) as rdms:
        record = rdms.attrs.get("subsample") or {}
        shown = heatmap_stimuli(
            rdms, MAX_HEATMAP, int(record.get("seed") or 0), record.get("balanced_by")
        )
        for name in shown["labels"]:
            labels.setdefault(name, {"name": name, "key": layer_key(name), "theory": None})
        conditions = {}
        for label in rdms.condition_labels:
            values, counts = rdms.conditions(label)
            drawn = len(values) <= MAX_HEATMAP
            conditions[layer_key(label)] = {
                "label": label,
                "values": values,
                "counts": [int(c) for c in counts],
                "drawn": drawn,
            }
            labels.setdefault(label, {"name": label, "key": layer_key(label), "theory": None})
            if not drawn:
                continue
            for distance in rdms.distances:
                for layer in rdms.layers:
                    cond = condition_heatmap(rdms, label, layer, distance, DIGITS)
                    context.site.data(
                        _key(stimset, "cond", model, label, distance, layer), {"rdm": cond["rdm"]}
                    )
        for distance in rdms.distances:
            for layer in rdms.layers:
                values = stimulus_heatmap(rdms, layer, distance, shown["rows"], DIGITS)
                context.site.data(_key(stimset, "rdm", model, distance, layer), {"rdm": values})
        context.site.data(
            _key(stimset, "stimuli", model),
            {
                "ids": shown["stimulus_ids"],
                "labels": {layer_key(k): v for k, v in shown["labels"].items()},
                "numeric": {layer_key(k): v for k, v in shown["numeric"].items()},
                "order": {layer_key(k): v for k, v in shown["order"].items()},
                "conditions": conditions,
            },
        )
        return {
            "labels": list(shown["labels"]),
            "layers": [{"name": layer, "key": layer_key(layer)} for layer in rdms.layers],
            "distances": rdms.distances,
            "conditions": [
                {"key": k, "n": len(c["values"]), "drawn": c["drawn"]}
                for k, c in conditions.items()
            ],
            "shown": shown["subsample"],
            "computed": shown["rdm_subsample"],
        }


PAGE = Similarity()
