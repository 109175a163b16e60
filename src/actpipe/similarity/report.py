"""The report's similarity section, rendered from ``compare.h5`` files (numbers copied as stored).

Per stimulus set: for each label, the layer of each model whose RDM matches the label's
theory RDM best (with the first and last layers and the whole profile over depth), and for
each pair of models, the best-matching layer of the second model for every layer of the
first (by CKA, with the RSA of the same pair).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .files import Comparison, read_comparison

PathLike = str | os.PathLike[str]
METHOD_NAMES = {
    "spearman": "Spearman ρ",
    "pearson": "Pearson r",
    "kendall_tau_a": "Kendall τ-a",
}


def _num(value: float, digits: int = 3) -> str:
    return "–" if value is None or not math.isfinite(float(value)) else f"{float(value):.{digits}f}"


def _best(values: Sequence[float]) -> int | None:
    finite = [(v, i) for i, v in enumerate(values) if math.isfinite(float(v))]
    return max(finite)[1] if finite else None


def _estimators(comparison: Comparison) -> str:
    kinds = sorted(set(comparison.cka_estimator))
    if kinds == ["exact"]:
        return "exact"
    sketched = sum(1 for e in comparison.cka_estimator if e != "exact")
    return f"{sketched} wide layer(s) sketched ({', '.join(k for k in kinds if k != 'exact')})"


def _theory_lines(comparison: Comparison, distance: str, method: str) -> list[str]:
    if not comparison.theory:
        return ["No labels for this set (a `labels.csv` beside the stimuli adds theory RDMs).", ""]
    t = comparison.layers
    name = METHOD_NAMES.get(method, method)
    lines = [
        f"**Theory RDMs**: {name} between each layer's `{distance}` RDM and the label's theory "
        "RDM; the best layer of each model, the first and last layers, and every layer in "
        "network order.",
        "",
        "| label (theory) | model | best layer | best | first layer | last layer | by depth |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    summary = []
    for label, by_distance in comparison.theory.items():
        values = by_distance.get(distance, {}).get(method)
        if values is None:
            continue
        theory = comparison.theories.get(label, {}).get("description", "")
        overall = _best(values)
        for model in t.models:
            rows = t.of_model(model)
            series = [float(values[i]) for i in rows]
            best = _best(series)
            best_cell = "–" if best is None else f"`{t.layer[rows[best]]}`"
            lines.append(
                f"| {label} ({theory}) | {model} | {best_cell} | "
                f"{_num(series[best]) if best is not None else '–'} | {_num(series[0])} | "
                f"{_num(series[-1])} | {' → '.join(_num(v, 2) for v in series)} |"
            )
        if overall is not None:
            first_positive = [
                f"{m} {_num(values[t.of_model(m)[0]])}"
                for m in t.models
                if math.isfinite(float(values[t.of_model(m)[0]])) and values[t.of_model(m)[0]] > 0
            ]
            summary.append(
                f"- **{label}**: best match {t.model[overall]} `{t.layer[overall]}` "
                f"({name} {_num(values[overall])}); first layers correlating positively: "
                f"{', '.join(first_positive) if first_positive else 'none'}."
            )
    return [*lines, "", *summary, ""]


def _pair_lines(comparison: Comparison, distance: str, method: str) -> list[str]:
    t = comparison.layers
    models = t.models
    if len(models) < 2:
        return []
    by_cka = comparison.cka is not None
    score = comparison.cka if by_cka else comparison.rsa[distance][method]
    rsa = comparison.rsa.get(distance, {}).get(method)
    what = "linear CKA" if by_cka else f"{METHOD_NAMES.get(method, method)} of the RDMs"
    lines = [
        f"**Model pairs**: for each layer of the first model, the layer of the second with the "
        f"highest {what}"
        + (f" (and the {METHOD_NAMES.get(method, method)} of their RDMs)." if by_cka else "."),
        "",
        "| models | layer | best match | CKA | RSA |"
        if by_cka
        else "| models | layer | best match | RSA |",
        "| --- | --- | --- | --- | --- |" if by_cka else "| --- | --- | --- | --- |",
    ]
    for a_index, a in enumerate(models):
        for b in models[a_index + 1 :]:
            rows_a, rows_b = t.of_model(a), t.of_model(b)
            for i in rows_a:
                j_local = _best([float(score[i, j]) for j in rows_b])
                if j_local is None:
                    continue
                j = rows_b[j_local]
                cells = [f"{a} ↔ {b}", f"`{t.layer[i]}`", f"`{t.layer[j]}`"]
                if by_cka:
                    cells += [_num(score[i, j]), _num(rsa[i, j]) if rsa is not None else "–"]
                else:
                    cells += [_num(score[i, j])]
                lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def render_section(compare_files: Sequence[PathLike]) -> list[str]:
    """Markdown lines of the similarity section for the given ``compare.h5`` files."""
    comparisons = [(Path(p), read_comparison(p)) for p in compare_files]
    if not comparisons:
        return []
    first = comparisons[0][1]
    distance = first.attrs.get("distances", ["correlation"])[0]
    methods = first.attrs.get("rsa_methods", [])
    method = methods[0] if methods else "spearman"
    lines = [
        "## Representational similarity",
        "",
        f"RDMs: `{distance}` dissimilarity between the stimuli's replicate-mean patterns "
        f"(cross-validated across replicates for `crossnobis`); RSA: "
        f"{METHOD_NAMES.get(method, method)} between RDMs; CKA: linear CKA with the unbiased "
        "HSIC estimator, from the activations. Every comparison is in "
        "`results/similarity/{set}/compare.tsv`; definitions in docs/similarity.md.",
        "",
    ]
    for path, comparison in comparisons:
        stimset = comparison.attrs.get("stimulus_set") or path.parent.name
        cost = comparison.attrs.get("cka_cost") or {}
        cka = (
            f"CKA on {comparison.attrs.get('n_cka_stimuli')} stimuli ({_estimators(comparison)}, "
            f"{cost.get('passes', '?')} pass(es), {cost.get('seconds', 0):.1f} s)"
            if comparison.cka is not None
            else "no CKA"
        )
        lines += [
            f"### Similarity on `{stimset}`: RSA on {len(comparison.rsa_stimulus_ids)} "
            f"stimuli, {cka}",
            "",
        ]
        if distance in comparison.rsa and method in comparison.rsa[distance]:
            lines += _theory_lines(comparison, distance, method)
            lines += _pair_lines(comparison, distance, method)
        lines.append(f"Files: `{path.parent.as_posix()}/`.")
        lines.append("")
    return lines


def best_theory_layers(
    comparison: Comparison, label: str, distance: str | None = None, method: str | None = None
) -> dict[str, tuple[str, float]]:
    """Per model: the layer whose RDM matches ``label``'s theory RDM best, and the value."""
    distance = distance or comparison.attrs["distances"][0]
    method = method or comparison.attrs["rsa_methods"][0]
    values = np.asarray(comparison.theory[label][distance][method])
    t = comparison.layers
    out = {}
    for model in t.models:
        rows = t.of_model(model)
        best = _best([float(values[i]) for i in rows])
        if best is not None:
            out[model] = (t.layer[rows[best]], float(values[rows[best]]))
    return out
