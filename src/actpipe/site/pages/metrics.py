"""Metrics vs depth: ARI/NMI/purity per label and silhouette per layer, one line per model.

Data: ``metrics/{set}`` per stimulus set, copied from the runs' quality tables::

    {"set": "digits", "labels": ["digit"], "metrics": ["ari_digit", ..., "silhouette", ...],
     "runs": [{"model", "pset", "run", "layers", "layerKeys",
               "values": {"ari_digit": [0.1, ...], "silhouette": [...], ...}}]}
"""

from __future__ import annotations

from typing import Any

from ...names import layer_key
from . import BuildContext, Page

SCORES = ("silhouette", "davies_bouldin", "n_nonempty", "inertia")


class Metrics(Page):
    name = "metrics"
    title = "Metrics vs depth"

    def build(self, context: BuildContext) -> dict[str, Any]:
        sets = []
        for name, table in context.tree.sets.items():
            runs = context.tree.runs_of_set(name)
            labels = list(dict.fromkeys(c for run in runs for c in run.label_columns))
            metrics = [f"{kind}_{label}" for label in labels for kind in ("ari", "nmi", "purity")]
            metrics += list(SCORES)
            entries = []
            for run in runs:
                rows = {row["layer"]: row for row in run.quality_values()}
                values = {
                    metric: [rows.get(layer, {}).get(metric) for layer in run.layers]
                    for metric in metrics
                }
                entries.append(
                    {
                        "model": run.model,
                        "pset": run.parameter_set,
                        "run": run.key,
                        "layers": run.layers,
                        "layerKeys": [layer_key(layer) for layer in run.layers],
                        "values": values,
                    }
                )
            context.site.data(
                f"metrics/{table.key}",
                {"set": name, "labels": labels, "metrics": metrics, "runs": entries},
            )
            sets.append(table.key)
        return {"sets": sets}


PAGE = Metrics()
