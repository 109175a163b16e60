"""Similarity: heatmaps of representational similarity (RDMs, layer x layer CKA).

Exists when ``results/similarity/`` holds ``*.heatmap.json`` files (the contract of
:mod:`actpipe.site.heatmaps`); its ``best_layers.tsv`` adds a section to the overview.
"""

from __future__ import annotations

from typing import Any

from ..heatmaps import best_layers_section, find_heatmaps, write_heatmaps
from ..tree import ResultsTree
from . import BuildContext, Page

FOLDER = "similarity"


class Similarity(Page):
    name = "similarity"
    title = "Similarity"

    def exists(self, tree: ResultsTree) -> bool:
        return bool(find_heatmaps(tree.optional(FOLDER)))

    def build(self, context: BuildContext) -> dict[str, Any]:
        folder = context.tree.optional(FOLDER)
        assert folder is not None
        maps = write_heatmaps(context, folder, FOLDER)
        return {
            "maps": maps,
            "overview": best_layers_section(folder, "Layers whose similarity agrees best"),
        }


PAGE = Similarity()
