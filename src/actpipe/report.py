"""The run's report: what the clustering found, per stimulus set, model and parameter set.

:func:`write_report` reads the aggregated outputs of every (set, model, parameter set)
folder (``metadata.json``, ``quality.tsv``, ``paths.json``) and writes one Markdown file:

* per stimulus set and label, which model and layer agree best with that label (highest
  adjusted Rand index of its clusters, with NMI and purity);
* per (set, model) clustered both ways, each layer's agreement with each label for the
  parameter sets on activations and on activations x gradients, side by side
  (:mod:`actpipe.agreement`);
* per (model, parameter set), a table of every layer: clusters, silhouette, Davies-Bouldin,
  cluster sizes and the label scores, followed by the cluster paths: how many distinct paths
  the examples take and how many follow the most common one.

Numbers are copied from the quality tables, so the report never disagrees with them.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._io import atomic_output
from .agreement import agreement_markdown, input_agreement

PathLike = str | os.PathLike[str]


@dataclass
class ClusterRun:
    """The aggregated outputs of one (stimulus set, model, parameter set) folder."""

    folder: Path
    metadata: dict[str, Any]
    quality: list[dict[str, str]]
    paths: dict[str, list[int]]

    @classmethod
    def read(cls, folder: PathLike) -> ClusterRun:
        folder = Path(folder)
        metadata = json.loads((folder / "metadata.json").read_text())
        with open(folder / "quality.tsv", newline="") as fh:
            quality = list(csv.DictReader(fh, delimiter="\t"))
        paths = json.loads((folder / "paths.json").read_text())["paths"]
        return cls(folder, metadata, quality, paths)

    @property
    def labels(self) -> list[str]:
        """Label columns scored in the quality table (``ari_<label>`` columns)."""
        if not self.quality:
            return []
        return [key[4:] for key in self.quality[0] if key.startswith("ari_")]

    def path_summary(self) -> tuple[int, int, int]:
        """(examples with a complete path, distinct paths, examples on the commonest path)."""
        complete = [tuple(p) for p in self.paths.values() if all(c >= 0 for c in p)]
        if not complete:
            return 0, 0, 0
        counts = Counter(complete)
        return len(complete), len(counts), counts.most_common(1)[0][1]


def _number(value: str, digits: int = 3) -> str:
    if value in ("", "nan", None):
        return "–"
    try:
        return f"{float(value):.{digits}f}"
    except ValueError:
        return value


def _float(value: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return float("-inf")
    return out if out == out else float("-inf")


def code(text: str) -> str:
    """``text`` as inline code in a Markdown table cell: pipes escaped, backticks fenced."""
    text = str(text).replace("|", "\\|")
    if "`" in text:
        return f"`` {text} ``"
    return f"`{text}`"


def _layer_table(run: ClusterRun) -> list[str]:
    labels = run.labels
    head = ["layer", "clusters", "silhouette", "Davies-Bouldin", "sizes (min/median/max)"]
    head += [f"{kind} {label}" for label in labels for kind in ("ARI", "NMI", "purity")]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in run.quality:
        cells = [
            code(row["layer"]),
            row.get("n_nonempty") or row.get("n_clusters", ""),
            _number(row.get("silhouette", "")),
            _number(row.get("davies_bouldin", "")),
            f"{row.get('size_min', '')}/{row.get('size_median', '')}/{row.get('size_max', '')}",
        ]
        for label in labels:
            cells += [
                _number(row.get(f"ari_{label}", "")),
                _number(row.get(f"nmi_{label}", "")),
                _number(row.get(f"purity_{label}", "")),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _best_by_label(runs: list[ClusterRun]) -> list[str]:
    """Per label of a stimulus set: the best layer of every (model, parameter set)."""
    labels = sorted({label for run in runs for label in run.labels})
    if not labels:
        return ["No labels for this set (add a `labels.csv` to score clusters against them).", ""]
    lines: list[str] = []
    for label in labels:
        rows = []
        for run in runs:
            if label not in run.labels or not run.quality:
                continue
            best = max(run.quality, key=lambda row: _float(row.get(f"ari_{label}", "")))
            rows.append((_float(best.get(f"ari_{label}", "")), run, best))
        rows.sort(key=lambda item: -item[0])
        lines += [
            f"**{label}**: the layer of each model whose clusters agree best with it",
            "",
            "| model | parameter set | best layer | ARI | NMI | purity |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for _, run, best in rows:
            lines.append(
                f"| {run.metadata['model']} | {run.metadata['parameter_set']} "
                f"| {code(best['layer'])} | {_number(best.get(f'ari_{label}', ''))} "
                f"| {_number(best.get(f'nmi_{label}', ''))} "
                f"| {_number(best.get(f'purity_{label}', ''))} |"
            )
        lines.append("")
    return lines


def render_report(folders: list[PathLike], similarity: list[PathLike] | None = None) -> str:
    """The Markdown report of the given (set, model, parameter set) folders.

    ``similarity``: ``compare.h5`` files whose section (:mod:`actpipe.similarity.report`)
    follows the clustering sections.
    """
    runs = [ClusterRun.read(folder) for folder in folders]
    by_set: dict[str, list[ClusterRun]] = {}
    for run in runs:
        by_set.setdefault(run.metadata["stimulus_set"], []).append(run)
    lines = [
        "# actpipe report",
        "",
        f"{len(runs)} clusterings: {len(by_set)} stimulus set(s), "
        f"{len({r.metadata['model'] for r in runs})} model(s), "
        f"{len({r.metadata['parameter_set'] for r in runs})} parameter set(s). "
        "ARI: adjusted Rand index of the clusters against a label (1 = the same partition, "
        "0 = chance); NMI: normalised mutual information; purity: share of examples in their "
        "cluster's majority label. "
        "Per-layer files: `results/clusters/{set}/{model}/{parameter_set}/`.",
        "",
    ]
    for stimset, set_runs in by_set.items():
        n = set_runs[0].metadata.get("n_examples", "?")
        lines += [f"## Stimulus set `{stimset}` ({n} examples)", ""]
        lines += _best_by_label(set_runs)
        lines += agreement_markdown(input_agreement(set_runs))
        for run in set_runs:
            meta = run.metadata
            params = meta.get("params", {})
            lines += [
                f"### {meta['model']} / {meta['parameter_set']} "
                f"({meta.get('method', params.get('method', '?'))}, k={params.get('k', '?')})",
                "",
            ]
            lines += _layer_table(run)
            complete, distinct, common = run.path_summary()
            lines += [
                "",
                f"Cluster paths through {len(meta.get('layers', []))} layers: {distinct} "
                f"distinct paths among {complete} examples; the most common one is taken by "
                f"{common}. Files: `{run.folder.as_posix()}/`.",
                "",
            ]
    if similarity:
        from .similarity.report import render_section

        lines += render_section(similarity)
    return "\n".join(lines).rstrip() + "\n"


def write_report(
    folders: list[PathLike], output: PathLike, similarity: list[PathLike] | None = None
) -> Path:
    """Write :func:`render_report` of ``folders`` (and ``similarity`` files) to ``output``."""
    text = render_report(folders, similarity)
    with atomic_output(output) as tmp:
        Path(tmp).write_text(text)
    return Path(output)
