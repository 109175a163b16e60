"""Overview: stimulus sets, models, parameter sets, the best layer per label, every run."""

from __future__ import annotations

from typing import Any

from ...names import layer_key
from ..tree import Run, _float
from . import BuildContext, Page


def best_layers(runs: list[Run]) -> dict[str, list[dict[str, Any]]]:
    """Per label column of a set: the layer of each run with the highest ARI against it.

    Rows are ranked by ARI (descending, runs in order on ties), as in ``results/report.md``;
    a run whose table has no ARI for the label is left out.
    """
    labels = list(dict.fromkeys(label for run in runs for label in run.label_columns))
    out: dict[str, list[dict[str, Any]]] = {}
    for label in labels:
        rows = []
        for run in runs:
            scored = [
                (row, _float(row.get(f"ari_{label}"))) for row in run.quality if row.get("layer")
            ]
            scored = [(row, ari) for row, ari in scored if ari is not None]
            if not scored:
                continue
            best, ari = max(scored, key=lambda item: item[1])
            rows.append(
                {
                    "model": run.model,
                    "pset": run.parameter_set,
                    "run": run.key,
                    "layer": best["layer"],
                    "layerKey": layer_key(best["layer"]),
                    "depth": run.layers.index(best["layer"]) if best["layer"] in run.layers else -1,
                    "nLayers": len(run.layers),
                    "ari": ari,
                    "nmi": _float(best.get(f"nmi_{label}")),
                    "purity": _float(best.get(f"purity_{label}")),
                }
            )
        rows.sort(key=lambda r: -r["ari"])
        out[label] = rows
    return out


class Overview(Page):
    name = "overview"
    title = "Overview"

    def build(self, context: BuildContext) -> dict[str, Any]:
        tree = context.tree
        return {
            "best": {name: best_layers(tree.runs_of_set(name)) for name in tree.sets},
        }


PAGE = Overview()
