"""The ``similarity:`` block of the config as one object, with its defaults and checks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .cka import CKA_METHODS, CKAOptions
from .compare import RSA_METHODS
from .distances import DISTANCES
from .theory import Theory

DEFAULT_THEORY: dict[str, Any] = {
    "orientation": {"kind": "circular", "period": 180},
    "phase": {"kind": "circular", "period": 360},
    "spatial_frequency": "log",
}
"""Label columns of the generated gratings with non-categorical theories."""
COMPARISONS = (*RSA_METHODS, "cka")
KEYS = (
    "enabled",
    "distances",
    "comparisons",
    "max_stimuli",
    "seed",
    "balance_by",
    "theory",
    "max_conditions",
    "block_mb",
    "memory_mb",
    "cka",
)
CKA_KEYS = ("method", "sketch_dim", "exact_max_gflop")


@dataclass(frozen=True)
class SimilarityOptions:
    """What :func:`compute_rdms` and :func:`compare_layers` compute (docs/similarity.md)."""

    distances: tuple[str, ...] = ("correlation",)
    comparisons: tuple[str, ...] = ("spearman", "cka")
    max_stimuli: int = 5000
    seed: int = 0
    balance_by: str | None = None
    theory: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_THEORY))
    max_conditions: int = 1000
    block_mb: float = 256.0
    memory_mb: float = 1024.0
    cka_method: str = "auto"
    sketch_dim: int = 256
    exact_max_gflop: float = 200.0

    def __post_init__(self) -> None:
        if not self.distances:
            raise ValueError("similarity.distances: give at least one distance")
        for d in self.distances:
            if d not in DISTANCES:
                raise ValueError(
                    f"similarity.distances: unknown distance {d!r}; choose from "
                    f"{', '.join(DISTANCES)}"
                )
        if len(set(self.distances)) != len(self.distances):
            raise ValueError(f"similarity.distances: a distance is listed twice {self.distances}")
        for c in self.comparisons:
            if c not in COMPARISONS:
                raise ValueError(
                    f"similarity.comparisons: unknown comparison {c!r}; choose from "
                    f"{', '.join(COMPARISONS)}"
                )
        if self.max_stimuli < 2:
            raise ValueError("similarity.max_stimuli must be at least 2")
        if self.cka_method not in CKA_METHODS:
            raise ValueError(
                f"similarity.cka.method {self.cka_method!r}: choose one of {', '.join(CKA_METHODS)}"
            )
        for label, value in dict(self.theory).items():
            Theory.from_config(value, label)

    @classmethod
    def from_config(cls, block: Mapping[str, Any] | None) -> SimilarityOptions:
        """Options from the config's ``similarity:`` block (missing keys: defaults)."""
        block = dict(block or {})
        unknown = sorted(set(block) - set(KEYS))
        if unknown:
            raise ValueError(f"similarity: unknown key {unknown[0]!r} (keys: {', '.join(KEYS)})")
        cka = dict(block.pop("cka", None) or {})
        unknown = sorted(set(cka) - set(CKA_KEYS))
        if unknown:
            raise ValueError(
                f"similarity.cka: unknown key {unknown[0]!r} (keys: {', '.join(CKA_KEYS)})"
            )
        block.pop("enabled", None)
        kwargs: dict[str, Any] = {}
        for key in ("distances", "comparisons"):
            if key in block:
                kwargs[key] = tuple(block.pop(key))
        if "theory" in block:
            kwargs["theory"] = dict(block.pop("theory") or {})
        kwargs.update(block)
        if "method" in cka:
            kwargs["cka_method"] = cka["method"]
        if "sketch_dim" in cka:
            kwargs["sketch_dim"] = int(cka["sketch_dim"])
        if "exact_max_gflop" in cka:
            kwargs["exact_max_gflop"] = float(cka["exact_max_gflop"])
        return cls(**kwargs)

    def with_(self, **changes: Any) -> SimilarityOptions:
        return replace(self, **changes)

    @property
    def rsa_methods(self) -> tuple[str, ...]:
        return tuple(c for c in self.comparisons if c in RSA_METHODS)

    @property
    def with_cka(self) -> bool:
        return "cka" in self.comparisons

    @property
    def block_bytes(self) -> int:
        return int(self.block_mb * 2**20)

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_mb * 2**20)

    def cka_options(self) -> CKAOptions:
        return CKAOptions(
            method=self.cka_method,
            sketch_dim=self.sketch_dim,
            exact_max_gflop=self.exact_max_gflop,
            seed=self.seed,
            memory_bytes=self.memory_bytes,
            block_bytes=self.block_bytes,
        )

    def theory_of(self, label: str) -> Theory:
        value = dict(self.theory).get(label)
        return Theory() if value is None else Theory.from_config(value, label)

    def to_dict(self) -> dict[str, Any]:
        """The options as the config block they correspond to (recorded in the outputs)."""
        return {
            "distances": list(self.distances),
            "comparisons": list(self.comparisons),
            "max_stimuli": self.max_stimuli,
            "seed": self.seed,
            "balance_by": self.balance_by,
            "theory": dict(self.theory),
            "max_conditions": self.max_conditions,
            "block_mb": self.block_mb,
            "memory_mb": self.memory_mb,
            "cka": {
                "method": self.cka_method,
                "sketch_dim": self.sketch_dim,
                "exact_max_gflop": self.exact_max_gflop,
            },
        }
