"""One example: its image, labels, and its path through the layers (highlighted in the flow)."""

from __future__ import annotations

from . import Page


class Example(Page):
    name = "example"
    title = "Example"
    nav = False


PAGE = Example()
