"""Transformer metrics: layer x head heatmaps (attention entropy, head importance, ...).

Exists when ``results/transformer/`` holds ``*.heatmap.json`` files (the contract of
:mod:`actpipe.site.heatmaps`: y = layers, x = heads).
"""

from __future__ import annotations

from typing import Any

from ..heatmaps import best_layers_section, find_heatmaps, write_heatmaps
from ..tree import ResultsTree
from . import BuildContext, Page

FOLDER = "transformer"


class Transformer(Page):
    name = "transformer"
    title = "Transformer metrics"

    def exists(self, tree: ResultsTree) -> bool:
        return bool(find_heatmaps(tree.optional(FOLDER)))

    def build(self, context: BuildContext) -> dict[str, Any]:
        folder = context.tree.optional(FOLDER)
        assert folder is not None
        maps = write_heatmaps(context, folder, FOLDER)
        return {
            "maps": maps,
            "overview": best_layers_section(folder, "Layers whose transformer metrics agree best"),
        }


PAGE = Transformer()
