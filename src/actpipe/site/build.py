"""Building the site: :func:`build_site` (rule ``build_site``).

The site folder, written whole to a temporary folder and renamed when complete::

    index.html                         the one HTML page (no data inside it)
    assets/site.css, site.js, flow.js  style, core (loading, routing, palettes), Sankey
    assets/pages/{page}.js             one script per page
    assets/plotly-{version}-{sha}.min.js   plotly.js, copied from the installed plotly package
    data/index.js                      sets, models, parameter sets, runs, pages (the first page)
    data/sets/..., data/runs/..., data/metrics/..., ...   loaded on demand (actpipe.site.data)
    thumbnails/{set}/{i // 1000}/{i}.webp   hard links to (or copies of) results/thumbnails/

Everything is written in a fixed order from sorted or configured inputs, with no dates, so
the same results give the same bytes.
"""

from __future__ import annotations

import html
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .. import __version__
from .data import prepare_run, write_run, write_stimuli
from .files import SiteWriter, atomic_directory, file_digest
from .options import SiteOptions
from .pages import BuildContext, Page, load_pages
from .tree import ResultsTree

log = logging.getLogger(__name__)
PathLike = str | os.PathLike[str]
STATIC = ("site.css", "site.js", "flow.js")


@dataclass
class SiteSummary:
    """What :func:`build_site` wrote: the folder, its pages, file count, bytes and seconds."""

    path: Path
    pages: list[str]
    runs: int
    files: int
    bytes: int
    seconds: float


def plotly_bundle() -> tuple[Path, str]:
    """The plotly.min.js of the installed plotly package and its version."""
    try:
        bundle = resources.files("plotly") / "package_data" / "plotly.min.js"
    except ModuleNotFoundError as exc:
        raise RuntimeError(
            "the site needs plotly.js, which it copies from the Python package plotly: "
            "pip install plotly"
        ) from exc
    path = Path(str(bundle))
    if not path.is_file():
        raise RuntimeError(f"{path} is missing from the plotly package; reinstall plotly")
    with open(path, encoding="utf-8", errors="replace") as fh:
        head = fh.read(200)
    version = "unknown"
    for token in head.split():
        if token.startswith("v") and token[1:2].isdigit():
            version = token[1:]
            break
    return path, version


def _static(name: str) -> Path:
    return Path(str(resources.files("actpipe.site") / "static" / name))


def write_assets(site: SiteWriter, pages: list[Page]) -> dict[str, Any]:
    """Copy the style, scripts and plotly.js into ``assets/``; return their paths."""
    for name in STATIC:
        site.text(f"assets/{name}", _static(name).read_text(encoding="utf-8"))
    scripts = []
    for page in pages:
        source = page.script()
        if not source.is_file():
            raise FileNotFoundError(
                f"page {page.name!r} has no script {source}; add it (see docs/site.md)"
            )
        scripts.append(site.text(f"assets/pages/{page.name}.js", source.read_text("utf-8")))
    bundle, version = plotly_bundle()
    plotly = site.copy(bundle, f"assets/plotly-{version}-{file_digest(bundle)}.min.js")
    return {"plotly": plotly, "plotlyVersion": version, "pages": scripts}


def render_index(title: str, page_scripts: list[str]) -> str:
    """The HTML page: style, core scripts, page scripts and the index data; no other data."""
    template = _static("index.html").read_text(encoding="utf-8")
    tags = [f'<script src="assets/{name}"></script>' for name in STATIC if name.endswith(".js")]
    tags += [f'<script src="{html.escape(src)}"></script>' for src in page_scripts]
    tags.append('<script src="data/index.js"></script>')
    return template.replace("{{title}}", html.escape(title)).replace(
        "{{scripts}}", "\n    ".join(tags)
    )


def _build_run(
    root: str,
    run: tuple[str, str, str],
    thumbnails: str | None,
    site_root: str,
    options: SiteOptions,
) -> tuple[dict[str, Any], int, int]:
    """One run's data files (a worker of :func:`build_site`); (summary, files, bytes)."""
    tree = ResultsTree.read(root, [run], thumbnails)
    item = tree.runs[0]
    site = SiteWriter(site_root)
    summary = write_run(prepare_run(item, tree.sets[item.stimulus_set], options), site, options)
    return summary, site.files, site.bytes


def build_site(
    results_dir: PathLike,
    out_dir: PathLike | None = None,
    *,
    runs: list[tuple[str, str, str]] | None = None,
    options: SiteOptions | None = None,
    thumbnails: PathLike | None = None,
    jobs: int = 1,
) -> SiteSummary:
    """Build the static site of a results folder; return what was written.

    ``results_dir`` holds ``clusters/`` and ``thumbnails/``; ``out_dir`` defaults to
    ``results_dir/site`` and is replaced as a whole. ``runs``: the (stimulus set, model,
    parameter set) triples to show (default: every complete folder under ``clusters/``);
    ``thumbnails``: where the per-set thumbnail folders are (default
    ``results_dir/thumbnails``); ``jobs``: processes building runs in parallel (the output
    does not depend on it).
    """
    started = time.perf_counter()
    options = options or SiteOptions()
    results_dir = Path(results_dir)
    out_dir = Path(out_dir) if out_dir is not None else results_dir / "site"
    tree = ResultsTree.read(results_dir, runs, thumbnails)
    pages = [page for page in load_pages() if page.exists(tree)]
    with atomic_directory(out_dir) as tmp:
        site = SiteWriter(tmp)
        assets = write_assets(site, pages)
        sets = []
        for table in tree.sets.values():
            sets.append(write_stimuli(table, site, options.stimuli_chunk))
            _link_thumbnails(table, site)
        triples = [(r.stimulus_set, r.model, r.parameter_set) for r in tree.runs]
        thumbs = None if thumbnails is None else str(thumbnails)
        args = [(str(results_dir), t, thumbs, str(tmp), options) for t in triples]
        if jobs > 1 and len(args) > 1:
            with ProcessPoolExecutor(max_workers=min(jobs, len(args))) as pool:
                results = list(pool.map(_build_run, *zip(*args, strict=True)))
        else:
            results = [_build_run(*a) for a in args]
        summaries = []
        for summary, files, size in results:
            summaries.append(summary)
            site.files += files
            site.bytes += size
        context = BuildContext(tree=tree, site=site, options=options, runs=summaries, sets=sets)
        page_entries = []
        for page in pages:
            info = page.build(context) or {}
            page_entries.append(
                {"name": page.name, "title": page.title, "nav": page.nav, "info": info}
            )
        index = {
            "title": options.title,
            "version": __version__,
            "plotly": assets["plotly"],
            "plotlyVersion": assets["plotlyVersion"],
            "options": options.to_dict(),
            "pages": page_entries,
            "sets": sets,
            "models": _models(tree),
            "psets": _parameter_sets(tree),
            "runs": summaries,
        }
        site.data("index", index)
        site.text("index.html", render_index(options.title, assets["pages"]))
        files, size = site.files, site.bytes
    seconds = time.perf_counter() - started
    log.info(
        "site of %d run(s), pages %s: %d files, %.1f MB in %.1f s -> %s",
        len(tree.runs),
        ", ".join(p.name for p in pages),
        files,
        size / 1e6,
        seconds,
        out_dir / "index.html",
    )
    return SiteSummary(out_dir, [p.name for p in pages], len(tree.runs), files, size, seconds)


def _link_thumbnails(table: Any, site: SiteWriter) -> None:
    for index in range(len(table)):
        source = table.thumbnail_file(index)
        if source is None:
            continue
        if not source.is_file():
            raise FileNotFoundError(
                f"{source}: thumbnail of stimulus {table.ids[index]!r} is missing; rerun rule "
                f"make_thumbnails for set {table.name!r}"
            )
        relative = source.relative_to(table.folder).as_posix()
        site.copy(source, f"thumbnails/{table.key}/{relative}")


def _models(tree: ResultsTree) -> list[dict[str, Any]]:
    from ..names import layer_key

    out = []
    for model in tree.models:
        run = next(r for r in tree.runs if r.model == model)
        out.append(
            {
                "name": model,
                "key": layer_key(model),
                "layers": run.layers,
                "dims": [run.metadata.get("feature_dims", {}).get(n) for n in run.layers],
            }
        )
    return out


def _parameter_sets(tree: ResultsTree) -> list[dict[str, Any]]:
    from ..names import layer_key

    out = []
    for pset in tree.parameter_sets:
        run = next(r for r in tree.runs if r.parameter_set == pset)
        out.append(
            {
                "name": pset,
                "key": layer_key(pset),
                "method": run.metadata.get("method", ""),
                "params": run.metadata.get("params", {}),
            }
        )
    return out
