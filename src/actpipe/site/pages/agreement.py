"""Activations vs activation × gradient: per layer, how well the clusters of each agree with a
label, side by side (:func:`actpipe.agreement.input_agreement`).

Exists when some (stimulus set, model) was clustered both from activations and from
activations x gradients. Data: ``agreement/{set}/{model}`` per such pair::

    {"set": "digits", "model": "digits_cnn",
     "tables": [{"label": "digit", "layers": [...],
                 "parameter_sets": [{"name", "input", "method", "k", "run",
                                     "ari": [...], "nmi": [...], "purity": [...]}],
                 "pairs": [{"activations", "activations_x_gradients", "same_parameters",
                            "ari_difference": [...]}]}]}

``run`` is the run's key (its cluster-paths page); scores are copied from the quality
tables (``null``: not defined). The overview gets one row per pair and label.
"""

from __future__ import annotations

from typing import Any

from ...agreement import ACT_X_GRAD, ACTIVATIONS, input_agreement
from ...names import layer_key
from ..tree import ResultsTree
from . import BuildContext, Page, overview_section


class Agreement(Page):
    name = "agreement"
    title = "Activations vs act × grad"

    def exists(self, tree: ResultsTree) -> bool:
        return bool(input_agreement(tree.runs))

    def build(self, context: BuildContext) -> dict[str, Any]:
        runs = context.tree.runs
        keys = {(r.stimulus_set, r.model, r.parameter_set): r.key for r in runs}
        grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for table in input_agreement(runs):
            grouped.setdefault((table["stimulus_set"], table["model"]), []).append(table)
        entries, rows = [], []
        for (stimset, model), tables in grouped.items():
            key = f"{layer_key(stimset)}/{layer_key(model)}"
            for table in tables:
                for column in table["parameter_sets"]:
                    column["run"] = keys[(stimset, model, column["name"])]
                for pair in table["pairs"]:
                    known = [d for d in pair["ari_difference"] if d is not None]
                    rows.append(
                        [
                            stimset,
                            model,
                            table["label"],
                            f"{pair[ACT_X_GRAD]} vs {pair[ACTIVATIONS]}"
                            + ("" if pair["same_parameters"] else " (other parameters)"),
                            f"{sum(d > 0 for d in known)} of {len(known)}",
                            max(known) if known else "–",
                            {"text": "compare", "href": f"#/{self.name}/{key}"},
                        ]
                    )
            context.site.data(
                f"{self.name}/{key}",
                {
                    "set": stimset,
                    "model": model,
                    "tables": [
                        {k: v for k, v in t.items() if k not in ("stimulus_set", "model")}
                        for t in tables
                    ],
                },
            )
            entries.append(
                {"set": stimset, "model": model, "key": key, "labels": [t["label"] for t in tables]}
            )
        section = overview_section(
            "Activations vs activations × gradients",
            "Per model clustered both ways, the layers whose clusters of activation × gradient "
            "(what the network used for its output) agree better with a label than the "
            "clusters of its activations (ARI), and the largest gain.",
            [
                "stimulus set",
                "model",
                "label",
                "parameter sets",
                "layers where act × grad agrees better",
                "largest ARI gain",
                "",
            ],
            rows,
        )
        return {"entries": entries, "overview": [section]}


PAGE = Agreement()
