"""One cluster: size, label composition, flows in and out, members nearest the centroid first."""

from __future__ import annotations

from . import Page


class Cluster(Page):
    name = "cluster"
    title = "Cluster"
    nav = False


PAGE = Cluster()
