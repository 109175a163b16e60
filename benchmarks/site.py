"""The results site at scale: build time, size on disk and page load times in headless Chromium.

    .venv/bin/python benchmarks/site.py               # 100,000 stimuli x 14 models x 10 layers
    .venv/bin/python benchmarks/site.py --scale 0.05  # quick check (5,000 stimuli)

1. A synthetic results tree (``actpipe.site.synthetic``) of one stimulus set of 100,000
   stimuli (times ``--scale``), 14 models of 10 layers, k = 50 clusters per layer, one
   parameter set: paths, transitions, metadata, quality tables, distances to centroids and
   thumbnails, as the workflow writes them.
2. ``actpipe.site.build_site`` builds the site (``--jobs`` processes). Printed: build time,
   files and total size (what the data files hold, plus plotly.js and the thumbnails, which
   are hard links to the thumbnails folder).
3. Headless Chromium (``/usr/bin/chromium``, no download) opens pages from disk (file://):
   the overview (the first page), a run's Sankey page, a cluster page (first page of its
   montage) and an example page. Load time = from the start of navigation to the page's
   ready marker (``document.body.dataset.ready``, set when everything it draws is drawn), the
   median of ``--repeat`` loads, each in a fresh tab. Target: first page under 2 s.
Nothing is asserted: figures are printed.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
FIRST_PAGE_TARGET_S = 2.0


def tree_bytes(path: Path) -> tuple[int, int]:
    """(files, bytes) under ``path`` (hard links counted at their full size)."""
    files = size = 0
    for p in path.rglob("*"):
        if p.is_file():
            files += 1
            size += p.stat().st_size
    return files, size


def page_loads(site: Path, routes: dict[str, str], repeat: int) -> dict[str, list[float]]:
    """Seconds from navigation start to each route's ready marker, ``repeat`` times each."""
    from playwright.sync_api import sync_playwright

    out: dict[str, list[float]] = {}
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for name, route in routes.items():
            expected = (
                route.split("/")[1] if route.startswith("#/") and len(route) > 2 else "overview"
            )
            for _ in range(repeat):
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.goto(site.resolve().as_uri() + "/index.html" + route, wait_until="commit")
                page.wait_for_selector(
                    f"body[data-ready='{expected}'], body[data-ready='error']",
                    state="attached",
                    timeout=60_000,
                )
                if page.evaluate("document.body.dataset.ready") == "error":
                    errors.append(f"{route}: {page.inner_text('.error')}")
                seconds = page.evaluate("performance.now()") / 1000.0
                out.setdefault(name, []).append(seconds)
                page.close()
        browser.close()
    if errors:
        print("browser errors:", *sorted(set(errors))[:10], sep="\n  ")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of 100,000 stimuli")
    parser.add_argument("--models", type=int, default=14)
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--k", type=int, default=50, help="clusters per layer")
    parser.add_argument("--parameter-sets", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2, help="processes building the site")
    parser.add_argument("--repeat", type=int, default=3, help="loads per page (median shown)")
    parser.add_argument("--out", type=Path, help="keep the tree here (default: a temp dir)")
    args = parser.parse_args()

    from actpipe.site import SiteOptions, build_site
    from actpipe.site.synthetic import synthetic_results

    n = max(100, int(round(100_000 * args.scale)))
    workdir = args.out or Path(tempfile.mkdtemp(prefix="actpipe-site-bench-"))
    results = workdir / "results"
    if results.exists():
        shutil.rmtree(results)
    print(
        f"synthetic run: {n:,} stimuli x {args.models} models x {args.layers} layers, "
        f"k={args.k}, {args.parameter_sets} parameter set(s) -> {results}"
    )
    started = time.perf_counter()
    runs = synthetic_results(
        results,
        n_stimuli=n,
        n_models=args.models,
        n_layers=args.layers,
        k=args.k,
        n_parameter_sets=args.parameter_sets,
    )
    print(f"  results tree written in {time.perf_counter() - started:.1f} s")

    summary = build_site(results, options=SiteOptions(), jobs=args.jobs)
    files, size = tree_bytes(summary.path)
    data_files, data_size = tree_bytes(summary.path / "data")
    thumb_files, thumb_size = tree_bytes(summary.path / "thumbnails")
    print(f"build: {summary.seconds:.1f} s with {args.jobs} process(es)")
    print(
        f"site: {files:,} files, {size / 1e6:.1f} MB (data {data_files:,} files "
        f"{data_size / 1e6:.1f} MB; thumbnails {thumb_files:,} files {thumb_size / 1e6:.1f} MB, "
        "hard links; plotly.js 4.8 MB)"
    )
    index_kb = (summary.path / "data" / "index.js").stat().st_size / 1e3
    run_key = "/".join(runs[0])
    run_kb = (summary.path / "data" / "runs" / run_key / "run.js").stat().st_size / 1e3
    print(f"first page data: index.js {index_kb:.1f} kB; a run's Sankey data: {run_kb:.1f} kB")

    routes = {
        "overview (first page)": "#/",
        "cluster paths (Sankey)": f"#/paths/{run_key}",
        "cluster (montage)": f"#/cluster/{run_key}/layer{min(5, args.layers - 1)}/0",
        "example": f"#/example/{run_key}/{n // 2}",
    }
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} not found: page loads not measured (tests/browser/install.sh)")
        return
    loads = page_loads(summary.path, routes, args.repeat)
    print(f"page load, file://, median of {args.repeat} (navigation start to ready):")
    for name, seconds in loads.items():
        print(
            f"  {name:26s} {statistics.median(seconds):6.2f} s   (all: "
            + ", ".join(f"{s:.2f}" for s in seconds)
            + ")"
        )
    first = statistics.median(loads["overview (first page)"])
    verdict = "under" if first < FIRST_PAGE_TARGET_S else "OVER"
    print(f"first page {first:.2f} s: {verdict} the {FIRST_PAGE_TARGET_S:.0f} s target")
    if args.out is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
