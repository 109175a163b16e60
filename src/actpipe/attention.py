"""Summaries of the attention metrics of a transformer: layer x head tables, report section,
and the data of the results site's transformer page.

The metrics themselves are computed during extraction
(:mod:`actpipe.extraction.attention_metrics`) and stored per block as
``/{model}/layers/blocks.{i}.attn.{metric}``, ``(n_stimuli, n_replicates, heads)``. The
workflow's ``summarise_attention`` rule calls :func:`summarise_attention`, which reads them and
writes ``results/transformer/{set}/{model}/summary.json``:

.. code-block:: text

    {"kind": "attention-summary", "model", "stimulus_set", "activations" (the file read),
     "n_stimuli", "n_replicates", "heads", "blocks": [block indices],
     "transformer": {family, prefix_tokens, class_token, patch_size, grid, ...},
     "metrics": {name: {"definition", "units", "mean": [[per head] per block],
                        "std": [[...]], "min": [[...]], "max": [[...]]}},
     "patterns": {block: {"dataset", "reduce"}} (stored attention patterns)}

``mean``/``std``/``min``/``max`` are over every exposure (stimuli x replicates) of the set,
row ``b`` of each table being block ``blocks[b]``. :func:`render_attention_section` turns
summaries into the report's section; :func:`attention_page_data` gives the JSON-ready data of
the site's page (heatmaps, and the class token's attention over the patch grid of chosen
examples when patterns are stored).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._io import write_json
from .errors import FormatError
from .probes import CLS_ROW_REDUCTIONS, METRICS, parse_probe
from .stimuli.folder import image_files
from .storage.lazy import LazyActivations

PathLike = str | os.PathLike[str]
KIND = "attention-summary"
UNITS = {"attention_entropy": "nats", "attention_distance": "pixels"}
BOUNDED = ("attention_entropy_norm", "sink_share", "density")
"""Metrics in [0, 1]: their heatmaps use that colour range."""
HEATMAP_SUFFIX = ".heatmap.json"
CLS_EXAMPLES = 4
"""Examples whose class-token attention the workflow hands to the site."""


def _rounded(table: np.ndarray) -> list[list[float]]:
    return [[float(f"{v:.6g}") for v in row] for row in table]


def attention_summary(activations: PathLike, model: str) -> dict[str, Any]:
    """Layer x head tables (mean, std, min, max over every exposure) of every stored metric of
    ``model`` in ``activations`` (see the module docstring for the layout)."""
    with LazyActivations(activations, models=[model], cache_bytes=0) as acts:
        lazy = acts[model]
        tables: dict[str, dict[int, np.ndarray]] = {}
        patterns: dict[int, dict[str, str]] = {}
        heads = None
        for name in lazy.layers:
            probe = parse_probe(name)
            if probe is None:
                continue
            view = lazy.layer(name)
            if probe.site == "attn.pattern":
                patterns[probe.block] = {"dataset": name, "reduce": view.attrs.get("reduce")}
            if probe.kind != "metric" or view.attrs.get("kind") != "metric":
                continue
            values = view.read(dtype=np.float64)  # (n, replicates, heads)
            heads = values.shape[-1]
            flat = values.reshape(-1, heads)
            tables.setdefault(str(probe.metric), {})[probe.block] = np.stack(
                [flat.mean(0), flat.std(0), flat.min(0), flat.max(0)]
            )
        if not tables:
            raise FormatError(
                f"{activations}: model {model!r} has no attention metrics (datasets "
                "blocks.{i}.attn.{metric} with kind 'metric'); list them under the model's "
                "'metrics:' and extract it again"
            )
        blocks = sorted({b for per_block in tables.values() for b in per_block})
        metrics: dict[str, Any] = {}
        for metric in METRICS:
            per_block = tables.get(metric)
            if per_block is None:
                continue
            missing = [b for b in blocks if b not in per_block]
            if missing:
                raise FormatError(
                    f"{activations}: model {model!r}: metric {metric!r} is missing for blocks "
                    f"{missing} that other metrics have"
                )
            stacked = np.stack([per_block[b] for b in blocks], axis=1)  # (4, blocks, heads)
            metrics[metric] = {
                "definition": METRICS[metric],
                "units": UNITS.get(metric, ""),
                **{
                    key: _rounded(stacked[i]) for i, key in enumerate(("mean", "std", "min", "max"))
                },
            }
        attrs = lazy.attrs
        return {
            "kind": KIND,
            "model": model,
            "stimulus_set": attrs.get("stimulus_set", ""),
            "activations": str(activations),
            "n_stimuli": lazy.n_stimuli,
            "n_replicates": lazy.n_replicates,
            "heads": heads,
            "blocks": blocks,
            "transformer": attrs.get("transformer") or {},
            "metrics": metrics,
            "patterns": {str(b): patterns[b] for b in sorted(patterns)},
        }


def summarise_attention(
    activations: PathLike,
    model: str,
    output: PathLike,
    maps: PathLike | None = None,
    examples: int = CLS_EXAMPLES,
) -> Path:
    """Write :func:`attention_summary` of ``model`` as JSON to ``output`` (atomically) and,
    with ``maps``, the site's heatmaps (:func:`attention_heatmaps`) into that folder.

    The workflow's ``summarise_attention`` rule calls this.
    """
    summary = attention_summary(activations, model)
    if maps is not None:
        page = attention_page_data(summary, activations, max_examples=examples)
        folder = Path(maps)
        tmp = folder.with_name(f".{folder.name}.{os.getpid()}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        for name, heatmap in attention_heatmaps(page).items():
            write_json(tmp / name, heatmap, indent=None)
        tmp.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    write_json(output, summary)
    return Path(output)


def attention_heatmaps(page: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The site's ``*.heatmap.json`` files (contract: :mod:`actpipe.site.heatmaps`) of one
    (set, model), by relative file name, from :func:`attention_page_data`.

    ``{metric}.heatmap.json``: block x head means of each metric (group ``attention metrics``).
    ``cls_attention/blocks.{i}/{n}.heatmap.json`` for each example with a stored pattern: the
    class token's attention over the patch grid, heads side by side (columns ``h{k} c{j}``,
    rows ``r{i}``; group ``class-token attention``).
    """
    where = f"{page['model']} on {page['stimulus_set']}"
    out: dict[str, dict[str, Any]] = {}
    for metric, heat in page["heatmaps"].items():
        entry = {
            "kind": "heatmap",
            "title": f"{metric}: {where}",
            "stimulus_set": page["stimulus_set"],
            "group": "attention metrics",
            "x": {"title": "head", "labels": heat["columns"]},
            "y": {"title": "block", "labels": heat["rows"]},
            "values": heat["values"],
            "scale": "sequential",
            "unit": heat["units"] or metric,
            "text": f"Mean over every exposure of {metric}: {heat['definition']}.",
        }
        if metric in BOUNDED:
            entry.update(zmin=0.0, zmax=1.0)
        out[f"{metric}{HEATMAP_SUFFIX}"] = entry
    cls = page.get("cls_attention")
    if cls:
        rows, cols = cls["grid"]
        for n, example in enumerate(cls["examples"]):
            for block, maps in example["blocks"].items():
                heads = len(maps["patches"])
                values = [
                    [maps["patches"][h][r][c] for h in range(heads) for c in range(cols)]
                    for r in range(rows)
                ]
                shares = ", ".join(f"h{h} {v:.2f}" for h, v in enumerate(maps["prefix_share"]))
                sid = example["stimulus_id"]
                out[f"cls_attention/{block}/{n}{HEATMAP_SUFFIX}"] = {
                    "kind": "heatmap",
                    "title": f"{block} class-token attention, {sid}: {where}",
                    "stimulus_set": page["stimulus_set"],
                    "group": "class-token attention",
                    "x": {
                        "title": "head and patch column",
                        "labels": [f"h{h} c{c}" for h in range(heads) for c in range(cols)],
                    },
                    "y": {"title": "patch row", "labels": [f"r{r}" for r in range(rows)]},
                    "values": values,
                    "zmin": 0.0,
                    "scale": "sequential",
                    "unit": "attention",
                    "text": f"The class token's attention to each patch of {sid} "
                    f"(unjittered exposure), heads side by side; attention to the prefix "
                    f"tokens: {shares}.",
                }
    return out


def read_summary(path: PathLike) -> dict[str, Any]:
    summary = json.loads(Path(path).read_text())
    if summary.get("kind") != KIND:
        raise FormatError(f"{path}: not an attention summary (kind {KIND!r} expected)")
    return summary


# --------------------------------------------------------------------------- report


def _table(summary: dict[str, Any], metric: str) -> list[str]:
    entry = summary["metrics"][metric]
    heads = summary["heads"]
    head = ["block", *(f"h{h}" for h in range(heads)), "mean"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for block, row in zip(summary["blocks"], entry["mean"], strict=True):
        cells = [f"`blocks.{block}`", *(f"{v:.3g}" for v in row), f"{np.mean(row):.3g}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_attention_section(summaries: Sequence[dict[str, Any]]) -> list[str]:
    """The report's section on transformers: per (set, model), a block x head table of the
    mean of each metric."""
    if not summaries:
        return []
    lines = [
        "## Inside the transformers",
        "",
        "Attention metrics computed during the forward pass, one number per head and exposure "
        "(definitions in docs/transformers.md); each table gives the mean over every exposure "
        "of the set, one row per block and one column per head. Per-exposure values: "
        "`/{model}/layers/blocks.{i}.attn.{metric}` of the activation file; these tables: "
        "`results/transformer/{set}/{model}/summary.json`.",
        "",
    ]
    for summary in summaries:
        t = summary.get("transformer") or {}
        prefix = t.get("prefix_tokens", "?")
        grid = "x".join(map(str, t.get("grid") or [])) or "?"
        lines += [
            f"### {summary['model']} on `{summary['stimulus_set']}`",
            "",
            f"{summary['n_stimuli']} stimuli x {summary['n_replicates']} replicates; "
            f"{summary['heads']} heads; {prefix} prefix token(s) before a {grid} patch grid.",
            "",
        ]
        for metric, entry in summary["metrics"].items():
            units = f" ({entry['units']})" if entry["units"] else ""
            lines += [f"**{metric}**{units}: {entry['definition']}", ""]
            lines += _table(summary, metric)
            lines.append("")
    return lines


# --------------------------------------------------------------------------- site page

READ_BYTES = 64 << 20
"""Most bytes of stored patterns :func:`read_cls_attention` holds at a time."""


def cls_attention_layout(summary: dict[str, Any]) -> dict[str, Any] | None:
    """Where the class token's attention of ``summary``'s model can be read, or ``None``.

    ``grid`` (patch rows, columns), ``patch_size`` (input pixels per patch, rows x columns),
    ``prefix_tokens`` (class token first, then any distillation and register tokens) and
    ``blocks``: block name -> ``{"dataset", "reduce"}`` of every stored attention pattern
    that keeps the class token's query row (reduce ``cls_row``, ``cls`` or ``flatten``), in
    block order. ``None`` when there is none, or the model has no class token or patch grid.
    """
    stored = {
        int(b): p
        for b, p in summary.get("patterns", {}).items()
        if p.get("reduce") in CLS_ROW_REDUCTIONS
    }
    t = summary.get("transformer") or {}
    if not stored or not t.get("grid") or not t.get("class_token"):
        return None
    rows, cols = (int(v) for v in t["grid"])
    return {
        "grid": [rows, cols],
        "patch_size": [int(v) for v in t.get("patch_size") or []] or None,
        "prefix_tokens": int(t.get("prefix_tokens", 1)),
        "blocks": {f"blocks.{b}": dict(stored[b]) for b in sorted(stored)},
    }


def read_cls_attention(
    activations: PathLike,
    summary: dict[str, Any],
    ids: Sequence[str],
    read_bytes: int = READ_BYTES,
) -> Iterator[tuple[str, dict[str, dict[str, np.ndarray]]]]:
    """The class token's attention of each stimulus of ``ids`` (in that order), replicate 0
    (the unjittered exposure unless the jitter says otherwise).

    Yields ``(stimulus id, {block: {"patches": (heads, rows, cols), "prefix_share":
    (heads,)}})``: the class token's query row of the stored pattern, its keys after the
    prefix tokens laid out over the patch grid (row-major, as the tokens are), and the sum of
    its attention to the prefix tokens (itself included). At most ``read_bytes`` of stored
    patterns are held at a time (a ``flatten`` pattern stores every query's row).
    """
    layout = cls_attention_layout(summary)
    if layout is None:
        return
    rows, cols = layout["grid"]
    prefix = layout["prefix_tokens"]
    n_keys = prefix + rows * cols
    model = summary["model"]
    with LazyActivations(activations, models=[model], cache_bytes=0) as acts:
        lazy = acts[model]
        views = {block: lazy.layer(p["dataset"]) for block, p in layout["blocks"].items()}
        per_row = max(v.nbytes // max(v.n_stimuli, 1) for v in views.values())
        step = max(1, read_bytes // max(per_row, 1))
        for start in range(0, len(ids), step):
            chunk = list(ids[start : start + step])
            maps: dict[str, np.ndarray] = {}
            for block, view in views.items():
                values = view.read(chunk, dtype=np.float64)[:, 0]  # (n, heads, f)
                if layout["blocks"][block]["reduce"] == "flatten":
                    values = values.reshape(len(chunk), values.shape[1], -1, n_keys)[:, :, 0]
                if values.shape[-1] != n_keys:
                    raise FormatError(
                        f"{activations}: {model}/{view.name} has {values.shape[-1]} keys per "
                        f"row, but the recorded {prefix} prefix token(s) and {rows}x{cols} "
                        f"patch grid make {n_keys}; extract the model again"
                    )
                maps[block] = values
            for i, sid in enumerate(chunk):
                yield (
                    sid,
                    {
                        block: {
                            "patches": v[i, :, prefix:].reshape(-1, rows, cols),
                            "prefix_share": v[i, :, :prefix].sum(-1),
                        }
                        for block, v in maps.items()
                    },
                )


def stimulus_folder(
    activations: PathLike, model: str, base: PathLike | None = None
) -> tuple[Path | None, dict[str, Any]]:
    """The stimulus folder the activation file records for ``model`` (``None`` when it is
    not there; a relative folder is looked for from the working directory, then from
    ``base``), and how it was read (``recursive``, ``extensions``)."""
    with LazyActivations(activations, models=[model], cache_bytes=0) as acts:
        attrs = acts[model].attrs
    root = str(attrs.get("stimulus_root") or "")
    options = attrs.get("stimulus_options") or {}
    if not root:
        return None, options
    for candidate in (Path(root), None if base is None else Path(base) / root):
        if candidate is not None and candidate.is_dir():
            return candidate, options
    return None, options


def attention_page_data(
    summary: PathLike | dict[str, Any],
    activations: PathLike | None = None,
    examples: Sequence[str] | None = None,
    max_examples: int = 8,
) -> dict[str, Any]:
    """What the results site's transformer page shows for one (set, model), JSON-ready.

    ``heatmaps``: for each metric, a block x head matrix of means (``rows`` are block names,
    ``columns`` head names, ``values`` the means; ``std``, ``min``, ``max`` the other tables;
    ``units``, ``definition``, ``bounded``: whether the metric lies in [0, 1]).

    ``cls_attention`` (when the activation file stores a pattern with the class token's query
    row: reduce ``cls_row``/``cls``/``flatten``, see :func:`cls_attention_layout`): the
    ``grid``, ``patch_size``, ``prefix_tokens``, ``blocks`` and, for each chosen example
    (``examples``, or the first ``max_examples`` stimuli), its ``image`` file (if found in the
    recorded stimulus folder) and, for each block, the class token's attention to every patch
    as a ``heads x rows x columns`` grid (:func:`read_cls_attention`; the attention to the
    prefix tokens is left out and given as ``prefix_share`` per head). Without
    ``activations``, ``cls_attention`` is ``None``.
    """
    if not isinstance(summary, dict):
        summary = read_summary(summary)
    blocks = [f"blocks.{b}" for b in summary["blocks"]]
    columns = [f"h{h}" for h in range(summary["heads"])]
    page: dict[str, Any] = {
        "model": summary["model"],
        "stimulus_set": summary["stimulus_set"],
        "heatmaps": {
            metric: {
                "rows": blocks,
                "columns": columns,
                "values": entry["mean"],
                "std": entry["std"],
                "min": entry["min"],
                "max": entry["max"],
                "units": entry["units"],
                "definition": entry["definition"],
                "bounded": metric in BOUNDED,
            }
            for metric, entry in summary["metrics"].items()
        },
        "cls_attention": None,
    }
    layout = cls_attention_layout(summary)
    if activations is None or layout is None:
        return page
    model = summary["model"]
    if examples is None:
        with LazyActivations(activations, models=[model], cache_bytes=0) as acts:
            examples = acts[model].stimulus_ids[:max_examples]
    root, options = stimulus_folder(activations, model)
    files = image_files(root, options) if root is not None else {}
    page["cls_attention"] = {
        **layout,
        "examples": [
            {
                "stimulus_id": sid,
                "image": str(files[sid]) if sid in files else None,
                "blocks": {
                    block: {
                        "patches": _rounded_grid(m["patches"]),
                        "prefix_share": [float(x) for x in m["prefix_share"]],
                    }
                    for block, m in maps.items()
                },
            }
            for sid, maps in read_cls_attention(activations, summary, examples)
        ],
    }
    return page


def _rounded_grid(grid: np.ndarray) -> list[list[list[float]]]:
    return [_rounded(head) for head in grid]
