"""What was clustered, compared: per layer, how well clusters of the activations and clusters
of the activations x gradients agree with each label, side by side.

The input is the aggregated outputs of (stimulus set, model, parameter set) folders (anything
with ``metadata`` (``metadata.json``) and ``quality`` (``quality.tsv`` rows), such as
:class:`actpipe.report.ClusterRun`). For every (set, model) clustered both ways, and every
label column, :func:`input_agreement` gives JSON-ready tables: one column per parameter set
(ARI, NMI and purity of each layer), and the pairs to compare, an activation parameter set
and an act x grad one whose parameters are otherwise equal (``same_parameters``; when no
such twin exists every activation set is paired, marked ``false``). Scores are copied from
the quality tables. :func:`agreement_markdown` renders them for the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

ACTIVATIONS = "activations"
ACT_X_GRAD = "activations_x_gradients"
SCORES = ("ari", "nmi", "purity")
NOT_COMPARED = ("input",)
"""Parameters that may differ between the two sets of a pair (what is clustered)."""


class ClusterFolder(Protocol):
    """The aggregated outputs of one (set, model, parameter set) folder."""

    metadata: dict[str, Any]
    quality: list[dict[str, str]]


def _score(value: str | None) -> float | None:
    try:
        out = float(value) if value not in (None, "") else None
    except ValueError:
        return None
    return None if out is None or out != out else out


def _input(run: ClusterFolder) -> str:
    return str(run.metadata.get("params", {}).get("input", ACTIVATIONS))


def _labels(run: ClusterFolder) -> list[str]:
    if not run.quality:
        return []
    return [key[4:] for key in run.quality[0] if key.startswith("ari_")]


def _comparable(run: ClusterFolder) -> dict[str, Any]:
    params = run.metadata.get("params", {})
    return {k: v for k, v in params.items() if k not in NOT_COMPARED}


def input_agreement(runs: Sequence[ClusterFolder]) -> list[dict[str, Any]]:
    """Per (stimulus set, model, label) clustered both ways, the layer-by-layer agreement of
    every parameter set with the label (see the module docstring).

    Each entry: ``stimulus_set``, ``model``, ``label``, ``layers`` (the act x grad sets'
    layers, in order), ``parameter_sets`` (``name``, ``input``, ``method``, ``k`` and per score
    a list aligned with ``layers``, ``None`` where a set lacks the layer or the score), and
    ``pairs`` (``activations``, ``activations_x_gradients``, ``same_parameters`` and
    ``ari_difference``: act x grad minus activations, per layer).
    """
    groups: dict[tuple[str, str], list[ClusterFolder]] = {}
    for run in runs:
        key = (str(run.metadata.get("stimulus_set", "")), str(run.metadata.get("model", "")))
        groups.setdefault(key, []).append(run)
    out: list[dict[str, Any]] = []
    for (stimset, model), group in groups.items():
        plain = [r for r in group if _input(r) == ACTIVATIONS]
        xgrad = [r for r in group if _input(r) == ACT_X_GRAD]
        if not plain or not xgrad:
            continue
        layers = list(xgrad[0].metadata.get("layers") or [row["layer"] for row in xgrad[0].quality])
        labels = [label for label in _labels(xgrad[0]) if any(label in _labels(r) for r in plain)]
        for label in labels:
            columns = []
            for run in plain + xgrad:
                rows = {row["layer"]: row for row in run.quality}
                params = run.metadata.get("params", {})
                column: dict[str, Any] = {
                    "name": run.metadata.get("parameter_set", ""),
                    "input": _input(run),
                    "method": run.metadata.get("method", params.get("method")),
                    "k": params.get("k"),
                }
                for score in SCORES:
                    column[score] = [
                        _score(rows.get(layer, {}).get(f"{score}_{label}")) for layer in layers
                    ]
                columns.append(column)
            pairs = []
            for x in xgrad:
                twins = [p for p in plain if _comparable(p) == _comparable(x)]
                for p in twins or plain:
                    a = next(c for c in columns if c["name"] == p.metadata.get("parameter_set"))
                    b = next(c for c in columns if c["name"] == x.metadata.get("parameter_set"))
                    pairs.append(
                        {
                            ACTIVATIONS: a["name"],
                            ACT_X_GRAD: b["name"],
                            "same_parameters": bool(twins),
                            "ari_difference": [
                                None if u is None or v is None else v - u
                                for u, v in zip(a["ari"], b["ari"], strict=True)
                            ],
                        }
                    )
            out.append(
                {
                    "stimulus_set": stimset,
                    "model": model,
                    "label": label,
                    "layers": layers,
                    "parameter_sets": columns,
                    "pairs": pairs,
                }
            )
    return out


def _cell(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def agreement_markdown(tables: Sequence[dict[str, Any]]) -> list[str]:
    """Markdown lines: per (set, model, label), a table of each layer's ARI per parameter
    set, activation sets first, then the difference of each pair."""
    if not tables:
        return []
    lines = [
        "### Activations vs activations x gradients",
        "",
        "ARI against the label of the clusters of each layer, for the parameter sets that "
        "cluster the activations and those that cluster activation x gradient (what the "
        "network used for its output); the last columns give act x grad minus activations for "
        "each pair (same parameters otherwise, unless marked *).",
        "",
    ]
    for table in tables:
        columns = table["parameter_sets"]
        pairs = table["pairs"]
        head = ["layer"]
        for c in columns:
            kind = "act x grad" if c["input"] == ACT_X_GRAD else "activations"
            head.append(f"{kind}: {c['name']} ({c['method']}, k={c['k']})")
        head += [
            f"Δ {p[ACT_X_GRAD]} − {p[ACTIVATIONS]}{'' if p['same_parameters'] else ' *'}"
            for p in pairs
        ]
        lines += [
            f"**{table['model']}** on `{table['stimulus_set']}`, label **{table['label']}**",
            "",
            "| " + " | ".join(head) + " |",
            "|" + " --- |" * len(head),
        ]
        for i, layer in enumerate(table["layers"]):
            cells = [f"`{layer}`"] + [_cell(c["ari"][i]) for c in columns]
            cells += [_cell(p["ari_difference"][i], signed=True) for p in pairs]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return lines
