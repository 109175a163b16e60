"""Options of the site build (the ``site:`` block of the workflow config)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class SiteOptions:
    """How the site is built.

    ``top_paths``: cluster paths drawn when a Sankey page opens (the page can change it);
    ``max_paths``: most common paths stored per run (the page's upper limit before "all
    transitions"); ``members_per_page``: thumbnails per page of a cluster montage;
    ``title``: shown in the page header. The ``*_chunk`` sizes set how many entries one data
    file holds (examples per paths chunk, members per member chunk, stimuli per stimulus
    chunk); ``composition_values``: label values listed per cluster (the rest pooled);
    ``attention_examples``: stimuli per (set, model) whose class-token attention the
    transformer page lays over their image (evenly spaced over the set; all of a smaller set).
    """

    title: str = "actpipe results"
    top_paths: int = 30
    max_paths: int = 1000
    members_per_page: int = 48
    paths_chunk: int = 500
    members_chunk: int = 5000
    stimuli_chunk: int = 1000
    composition_values: int = 20
    attention_examples: int = 64

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"site.{f.name} must be an integer, got {value!r}")
            if f.type == "int" and value < 1:
                raise ValueError(f"site.{f.name} must be at least 1, got {value}")
        if self.top_paths > self.max_paths:
            raise ValueError(
                f"site.top_paths ({self.top_paths}) is larger than site.max_paths "
                f"({self.max_paths}); lower top_paths or raise max_paths"
            )

    @classmethod
    def from_config(cls, block: dict[str, Any] | None) -> SiteOptions:
        """Options from the config's ``site:`` block; keys of other steps are ignored."""
        block = dict(block or {})
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in block.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
