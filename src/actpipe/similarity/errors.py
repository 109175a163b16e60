"""Errors of the similarity analysis."""

from __future__ import annotations


class NotFound(KeyError):
    """A model, layer, label or distance that is not there; the message lists what is."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
