"""The site's pages: one module per page, listed in :data:`PAGES`.

Adding a page (docs/site.md walks through an example):

1. ``src/actpipe/site/pages/{name}.py`` defines ``PAGE``, an instance of a :class:`Page`
   subclass: its ``name`` (the route ``#/{name}/...`` and the script's file name), ``title``
   (navigation), ``exists(tree)`` (whether the results tree holds what it shows; a page that
   does not exist is left out of the site without error) and ``build(context)`` (writes the
   page's data files with ``context.site.data(key, value)`` and returns a small JSON-able
   dict that the page's script finds in ``index.pages[i].info``);
2. ``src/actpipe/site/static/pages/{name}.js`` registers the page's renderer with
   ``actpipe.page({name, title, render(view, route, api)})``;
3. ``{name}`` is added to :data:`PAGES` (the order of the navigation bar).

A page's ``build`` may also return ``{"overview": [section, ...]}``: sections (a title, a
sentence, a table of text cells and links) that the overview page shows under its own
(see :func:`overview_section`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..files import SiteWriter
from ..options import SiteOptions
from ..tree import ResultsTree

PAGES: tuple[str, ...] = (
    "overview",
    "paths",
    "cluster",
    "example",
    "metrics",
    "agreement",
    "similarity",
    "transformer",
)
"""Page modules in navigation order."""


@dataclass
class BuildContext:
    """What a page's ``build`` gets.

    ``tree``: the results being shown (runs, stimulus tables, :meth:`ResultsTree.optional`
    for analysis outputs); ``site``: the writer of data files; ``options``: the build
    options; ``runs``: each run's index entry (names, keys, layers, path counts), in order;
    ``sets``: each stimulus set's index entry.
    """

    tree: ResultsTree
    site: SiteWriter
    options: SiteOptions
    runs: list[dict[str, Any]] = field(default_factory=list)
    sets: list[dict[str, Any]] = field(default_factory=list)


class Page:
    """A page of the site (subclass it; see the module docstring)."""

    name: str = ""
    title: str = ""
    nav: bool = True
    """Whether the navigation bar links to it (pages reached from other pages say False)."""

    def exists(self, tree: ResultsTree) -> bool:
        """Whether ``tree`` holds what this page shows."""
        return bool(tree.runs)

    def build(self, context: BuildContext) -> dict[str, Any] | None:
        """Write this page's data files; return what the page finds in ``index``."""
        return None

    def script(self) -> Path:
        """The page's script: ``static/pages/{name}.js`` of this package."""
        return Path(str(resources.files("actpipe.site") / "static" / "pages" / f"{self.name}.js"))


def load_pages(names: tuple[str, ...] = PAGES) -> list[Page]:
    """The ``PAGE`` object of every listed page module, in order."""
    pages = []
    for name in names:
        module = importlib.import_module(f"{__name__}.{name}")
        page = getattr(module, "PAGE", None)
        if not isinstance(page, Page) or page.name != name:
            raise TypeError(
                f"{module.__name__} must define PAGE, a Page whose name is {name!r} "
                "(see actpipe.site.pages)"
            )
        pages.append(page)
    return pages


def overview_section(
    title: str, text: str, columns: list[str], rows: list[list[Any]]
) -> dict[str, Any]:
    """A section the overview shows: a table of cells, each a text or a number, or a link
    ``{"text": ..., "href": "#/page/..."}`` (routes only; the overview refuses other links)."""
    return {"title": title, "text": text, "columns": columns, "rows": rows}
