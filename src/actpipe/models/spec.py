"""The config block of one model, parsed: source, architecture, weights, layers, batching."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..preprocess import Preprocess, resolve_preprocess

REDUCTIONS = ("flatten", "mean", "max", "cls")


@dataclass(frozen=True)
class LayerSpec:
    """One layer to capture: the module name and how its output becomes a feature vector."""

    name: str
    reduce: str = "flatten"


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build one model of the panel and extract its layers."""

    name: str
    source: str
    arch: str
    layers: tuple[LayerSpec, ...]
    weights: str = "random"
    seed: int = 0
    kwargs: dict[str, Any] = field(default_factory=dict)
    preprocess: Preprocess = field(default_factory=Preprocess)
    batch_size: int = 32
    strict: bool = True

    @classmethod
    def from_config(cls, name: str, block: dict[str, Any]) -> ModelSpec:
        """Parse a ``models:`` entry. Layer entries are names or ``{name, reduce}`` mappings."""
        default_reduce = block.get("reduce", "flatten")
        layers = []
        for entry in block.get("layers", []):
            if isinstance(entry, str):
                layers.append(LayerSpec(entry, default_reduce))
            else:
                layers.append(LayerSpec(entry["name"], entry.get("reduce", default_reduce)))
        for layer in layers:
            if layer.reduce not in REDUCTIONS:
                raise ValueError(
                    f"model {name!r}, layer {layer.name!r}: unknown reduce {layer.reduce!r}; "
                    f"choose one of {REDUCTIONS}"
                )
        names = [layer.name for layer in layers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"model {name!r}: layer(s) listed twice: {duplicates}")
        if not layers:
            raise ValueError(f"model {name!r}: 'layers' is empty; list at least one layer")
        return cls(
            name=name,
            source=block["source"],
            arch=block["name"],
            layers=tuple(layers),
            weights=str(block.get("weights", "random")),
            seed=int(block.get("seed", 0)),
            kwargs=dict(block.get("kwargs", {}) or {}),
            preprocess=resolve_preprocess(block.get("preprocess")),
            batch_size=int(block.get("batch_size", 32)),
            strict=bool(block.get("strict", True)),
        )

    @property
    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description for provenance attributes."""
        return {
            "name": self.name,
            "source": self.source,
            "arch": self.arch,
            "weights": self.weights,
            "seed": self.seed,
            "kwargs": self.kwargs,
            "batch_size": self.batch_size,
            "strict": self.strict,
            "layers": [{"name": layer.name, "reduce": layer.reduce} for layer in self.layers],
        }
