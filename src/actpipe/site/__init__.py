"""A browsable static site of a run's results: cluster paths, clusters, images and metrics.

The site opens straight from disk (``file://``) with no server and no network: every script
and style it uses is inside it, and its data are small ``.js`` files that a page loads on
demand. Modules:

* :mod:`.thumbnails`: one small image per stimulus (rule ``make_thumbnails``);
* :mod:`.tree`: reading a results tree (runs, stimulus tables, optional analysis outputs);
* :mod:`.data`: turning one run into page data (top paths, chunks of paths and members);
* :mod:`.pages`: the page registry (one module per page);
* :mod:`.build`: :func:`build_site`, the public entry point (rule ``build_site``);
* :mod:`.serve`: ``actpipe serve``.

See docs/site.md for the pages, the data layout and how to add a page.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "SiteOptions",
    "ThumbnailOptions",
    "build_site",
    "make_thumbnails",
    "serve",
]


def __getattr__(name: str) -> Any:
    if name == "build_site":
        from .build import build_site

        return build_site
    if name == "SiteOptions":
        from .options import SiteOptions

        return SiteOptions
    if name in ("ThumbnailOptions", "make_thumbnails"):
        from . import thumbnails

        return getattr(thumbnails, name)
    if name == "serve":
        from .serve import serve

        return serve
    raise AttributeError(f"module 'actpipe.site' has no attribute {name!r}")
