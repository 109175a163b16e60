"""Cluster paths of one run: a Sankey diagram of the N most common paths (data: runs/...)."""

from __future__ import annotations

from . import Page


class Paths(Page):
    name = "paths"
    title = "Cluster paths"


PAGE = Paths()
