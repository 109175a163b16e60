"""Transformers: per (stimulus set, model with attention metrics), the block x head heatmap of
each metric and, when patterns are stored, the class token's attention laid over examples.

Reads ``results/transformer/{set}/{model}/summary.json`` (rule ``summarise_attention``,
docs/transformers.md) for every set and model the site shows, and, when the model stores an
attention pattern that keeps the class token's query row (reduce ``cls_row``, ``cls`` or
``flatten``), its activation file ``results/activations/{set}/{model}.h5`` through
:mod:`actpipe.attention`. Data files (every part a layer key)::

    transformer/{set}/{model}/summary        metrics (mean, std, min, max per block x head,
                                             units, definitions), sizes, the model's layout,
                                             the class-token part's blocks and preprocessing
    transformer/{set}/{model}/examples       the examples with maps: stimulus indices, ids,
                                             input pictures and sizes, replicate-0 jitter,
                                             their example index in the model's runs
    transformer/{set}/{model}/cls/{block}/{i}   stimulus i, one block: the class token's
                                             attention over the patch grid per head
                                             (DIGITS significant digits) and to the prefix

and one picture per example and preprocessing, ``inputs/{set}/{digest}/{i // 1000}/{i}.webp``:
the part of the image the model's input covers (:func:`actpipe.preprocess.input_region`),
at the input's size (at most :data:`actpipe.site.thumbnails.MAX_INPUT_SIDE`), so the patch
grid lies exactly over it. Examples: ``site.attention_examples`` stimuli per (set, model),
evenly spaced over the stimuli of the activation file (all of them in a smaller set).

Other ``*.heatmap.json`` files under ``results/transformer/`` (the contract of
:mod:`actpipe.site.heatmaps`) are listed on the page as well; the ``maps/`` folders beside the
summaries are left out (the page draws the same numbers from ``summary.json``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ...attention import (
    attention_page_data,
    cls_attention_layout,
    read_cls_attention,
    read_summary,
    stimulus_folder,
)
from ...errors import StimulusError
from ...names import layer_key
from ...preprocess import Preprocess
from ...stimuli.folder import image_files
from ...storage.lazy import LazyActivations
from ..heatmaps import best_layers_section, find_heatmaps, write_heatmaps
from ..thumbnails import ThumbnailOptions, render_model_input
from ..tree import REPLICATE_SEPARATOR, ResultsTree, StimulusTable
from . import BuildContext, Page, overview_section

log = logging.getLogger(__name__)
FOLDER = "transformer"
SUMMARY = "summary.json"
MAPS = "maps"
DIGITS = 5
"""Significant digits of the class token's attention values (the metric tables are copied)."""
INPUT_PICTURES = ThumbnailOptions(size=64, format="webp", quality=90)
"""How the model inputs under the maps are encoded."""
INPUTS = "inputs"


def summaries(tree: ResultsTree) -> list[tuple[str, str, Path]]:
    """``(set, model, summary.json)`` of every attention summary of a set the site shows, in
    the site's set and model order (models with no clustering run of their own, e.g. left
    out by every parameter set's ``models:``, after those with one, by name)."""
    out = []
    for stimset in tree.sets:
        folder = tree.optional(FOLDER, stimset)
        if folder is None:
            continue
        found = {p.parent.name: p for p in folder.glob(f"*/{SUMMARY}") if p.is_file()}
        order = [m for m in tree.models if m in found]
        order += sorted(m for m in found if m not in order)
        out += [(stimset, model, found[model]) for model in order]
    return out


def _summary_maps(tree: ResultsTree) -> list[Path]:
    """The ``maps/`` folders written beside attention summaries (drawn from the summaries)."""
    folder = tree.optional(FOLDER)
    if folder is None:
        return []
    return [p.parent / MAPS for p in sorted(folder.glob(f"*/*/{SUMMARY}"))]


def _key(*parts: str) -> str:
    return "/".join([FOLDER, *(layer_key(p) for p in parts)])


def _rounded(values: np.ndarray, digits: int = DIGITS) -> Any:
    """Nested lists of ``values`` to ``digits`` significant digits."""
    if values.ndim == 1:
        return [float(f"{v:.{digits}g}") for v in values.tolist()]
    return [_rounded(v, digits) for v in values]


def choose_examples(ids: list[str], count: int) -> list[int]:
    """Positions of ``count`` evenly spaced items of ``ids`` (all when there are fewer):
    ``floor(k * n / count)`` for ``k = 0 .. count - 1``."""
    n = len(ids)
    if n <= count:
        return list(range(n))
    return [k * n // count for k in range(count)]


class Transformer(Page):
    name = "transformer"
    title = "Transformer metrics"

    def exists(self, tree: ResultsTree) -> bool:
        if summaries(tree):
            return True
        return bool(find_heatmaps(tree.optional(FOLDER), _summary_maps(tree)))

    def build(self, context: BuildContext) -> dict[str, Any]:
        models = []
        rows: list[list[Any]] = []
        for stimset, model, path in summaries(context.tree):
            entry = write_model(context, stimset, model, path)
            models.append(entry)
            href = f"#/{FOLDER}/{entry['setKey']}/{entry['modelKey']}"
            rows.append(
                [
                    stimset,
                    {"text": model, "href": href},
                    entry["blocks"],
                    entry["heads"],
                    entry["metrics"],
                    entry["clsText"],
                ]
            )
        folder = context.tree.optional(FOLDER)
        maps = []
        overview = []
        if folder is not None:
            maps = write_heatmaps(context, folder, FOLDER, _summary_maps(context.tree))
        if rows:
            text = (
                "Attention metrics of every block and head, and the class token's attention "
                "laid over example images where the model stores it."
            )
            columns = ["set", "model", "blocks", "heads", "metrics", "class-token attention"]
            overview.append(overview_section("Inside the transformers", text, columns, rows))
        if folder is not None:
            overview += best_layers_section(folder, "Layers whose transformer metrics agree best")
        return {"models": models, "maps": maps, "overview": overview}


def activation_file(tree: ResultsTree, stimset: str, model: str, summary: dict[str, Any]) -> Path:
    """The activation file of a summary: ``activations/{set}/{model}.h5`` of the results
    folder, else the file the summary records."""
    own = tree.root / "activations" / stimset / f"{model}.h5"
    return own if own.is_file() else Path(summary.get("activations", ""))


def write_model(context: BuildContext, stimset: str, model: str, path: Path) -> dict[str, Any]:
    """Write one (set, model)'s data files; return its entry of the page's index info."""
    summary = read_summary(path)
    page = attention_page_data(summary)
    layout = cls_attention_layout(summary)
    base = _key(stimset, model)
    data: dict[str, Any] = {
        "set": stimset,
        "model": model,
        "setKey": layer_key(stimset),
        "modelKey": layer_key(model),
        "file": f"{FOLDER}/{stimset}/{model}/{SUMMARY}",
        "nStimuli": summary["n_stimuli"],
        "nReplicates": summary["n_replicates"],
        "heads": summary["heads"],
        "blocks": page["heatmaps"][next(iter(page["heatmaps"]))]["rows"],
        "transformer": summary.get("transformer") or {},
        "metrics": [{"name": name, **heat} for name, heat in page["heatmaps"].items()],
        "cls": None,
    }
    entry = {
        "set": stimset,
        "model": model,
        "setKey": data["setKey"],
        "modelKey": data["modelKey"],
        "blocks": len(data["blocks"]),
        "heads": data["heads"],
        "metrics": len(data["metrics"]),
        "cls": False,
        "examples": 0,
        "clsText": "–",
    }
    acts = activation_file(context.tree, stimset, model, summary)
    if layout is not None and not acts.is_file():
        log.warning(
            "%s: missing; the transformer page shows no class-token attention of %s on %s "
            "(run the extraction, or build the site where the activation files are)",
            acts,
            model,
            stimset,
        )
    elif layout is not None:
        table = context.tree.sets[stimset]
        cls = write_examples(context, stimset, model, summary, layout, acts, table)
        data["cls"] = cls
        blocks = ", ".join(layout["blocks"])
        entry.update(
            cls=True,
            examples=cls["examples"],
            clsText=f"{blocks}: {cls['examples']} of {summary['n_stimuli']} stimuli",
        )
    context.site.data(f"{base}/summary", data)
    return entry


def write_examples(
    context: BuildContext,
    stimset: str,
    model: str,
    summary: dict[str, Any],
    layout: dict[str, Any],
    acts: Path,
    table: StimulusTable,
) -> dict[str, Any]:
    """Write the examples' class-token maps and input pictures; return the summary's ``cls``."""
    with LazyActivations(acts, models=[model], cache_bytes=0) as file:
        lazy = file[model]
        attrs = lazy.attrs
        shown = [sid for sid in lazy.stimulus_ids if sid in table.index]
        ids = [shown[k] for k in choose_examples(shown, context.options.attention_examples)]
        jitter = lazy.jitter()  # (n_stimuli, n_replicates, 4) in memory, or None
        first = None if jitter is None else np.asarray(jitter)[lazy.rows(ids), 0]
    pre = Preprocess.from_dict(attrs.get("preprocess") or {})
    record = pre.to_dict()
    digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:10]
    root, options = stimulus_folder(acts, model, context.tree.root.parent)
    files = image_files(root, options) if root is not None else {}
    if root is None:
        log.warning(
            "%s: the stimulus folder %r recorded for %s is not there; the transformer page "
            "draws the class-token attention without the images",
            acts,
            attrs.get("stimulus_root"),
            model,
        )
    limit = (options or {}).get("max_image_pixels")
    base = _key(stimset, model)
    examples: dict[str, list[Any]] = {"stimuli": [], "ids": [], "images": [], "inputs": []}
    jittered: list[Any] = []
    for n, (sid, maps) in enumerate(read_cls_attention(acts, summary, ids)):
        index = table.index[sid]
        for block, values in maps.items():
            context.site.data(
                f"{base}/cls/{layer_key(block)}/{index}",
                {
                    "patches": _rounded(values["patches"]),
                    "prefix": _rounded(values["prefix_share"]),
                },
            )
        image, size = _input_picture(context, table, index, files.get(sid), pre, digest, limit)
        examples["stimuli"].append(index)
        examples["ids"].append(sid)
        examples["images"].append(image)
        examples["inputs"].append(size)
        shift = None if first is None else [float(v) for v in first[n]]
        jittered.append(shift if shift is not None and shift != [0.0, 0.0, 0.0, 1.0] else None)
    examples["jitter"] = jittered if any(j is not None for j in jittered) else None
    examples["runs"] = _run_examples(context, stimset, model, examples["ids"])
    context.site.data(f"{base}/examples", examples)
    return {
        "grid": layout["grid"],
        "patchSize": layout["patch_size"],
        "prefixTokens": layout["prefix_tokens"],
        "blocks": list(layout["blocks"]),
        "reduce": {block: p["reduce"] for block, p in layout["blocks"].items()},
        "examples": len(examples["ids"]),
        "digits": DIGITS,
        "preprocess": record,
        "images": bool(files),
    }


def _input_picture(
    context: BuildContext,
    table: StimulusTable,
    index: int,
    path: Path | None,
    pre: Preprocess,
    digest: str,
    limit: int | None,
) -> tuple[str | None, list[int] | None]:
    """The site path and input size ``[width, height]`` of stimulus ``index``'s model input
    (written once per set and preprocessing), or ``(None, None)`` without its image."""
    if path is None:
        return None, None
    relative = f"{INPUTS}/{table.key}/{digest}/{index // 1000}/{index}.webp"
    try:
        data, _, _, region = render_model_input(path, pre, INPUT_PICTURES, max_image_pixels=limit)
    except (OSError, ValueError, StimulusError) as exc:
        log.warning("cannot read %s (no picture under its attention map): %s", path, exc)
        return None, None
    if not (context.site.root / relative).is_file():
        context.site.binary(relative, data)
    return relative, list(region.size)


def _run_examples(
    context: BuildContext, stimset: str, model: str, ids: list[str]
) -> list[dict[str, Any]]:
    """For each run of (set, model): its key and each chosen stimulus's example index in it
    (its replicate mean, or its replicate 0 when the run clusters exposures; -1 if absent)."""
    out = []
    for run in context.tree.runs:
        if run.stimulus_set != stimset or run.model != model:
            continue
        examples, _ = run.load_paths()
        where = {eid: i for i, eid in enumerate(examples)}
        exposures = not str(run.metadata.get("examples", "stimuli")).startswith("stimuli")
        wanted = [f"{sid}{REPLICATE_SEPARATOR}0" if exposures else sid for sid in ids]
        out.append(
            {
                "key": run.key,
                "pset": run.parameter_set,
                "examples": [where.get(w, -1) for w in wanted],
            }
        )
    return out


PAGE = Transformer()
