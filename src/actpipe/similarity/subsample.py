"""Seeded, class-balanced subsamples of stimuli, for stimulus RDMs of large sets.

With ``n`` stimuli and a limit ``max_stimuli < n``, :func:`balanced_subsample` keeps
``max_stimuli`` of them, spread as evenly as possible over the classes of one label column:
classes are visited from the smallest to the largest and each takes
``min(its size, remaining // classes left)`` stimuli, so small classes are kept whole and the
others get equal shares (differing by at most one). Stimuli without a value form a class of
their own (``""``). Within a class the stimuli are drawn without replacement by
``numpy.random.default_rng(seed)``, visiting classes in sorted order; the kept rows are
returned in increasing order, so the subsample depends only on the stimulus list, the label
values, ``max_stimuli`` and ``seed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Subsample:
    """Which rows were kept and how they were chosen (written with the RDMs)."""

    rows: np.ndarray
    n_total: int
    seed: int
    max_stimuli: int
    balanced_by: str | None = None
    per_class: dict[str, int] = field(default_factory=dict)

    @property
    def subsampled(self) -> bool:
        return len(self.rows) < self.n_total

    def record(self) -> dict[str, Any]:
        """A JSON-able description of the subsample."""
        return {
            "subsampled": self.subsampled,
            "n_total": int(self.n_total),
            "n": int(len(self.rows)),
            "max_stimuli": int(self.max_stimuli),
            "seed": int(self.seed),
            "balanced_by": self.balanced_by,
            "per_class": {k: int(v) for k, v in self.per_class.items()},
        }


def class_quotas(sizes: Sequence[int], total: int) -> list[int]:
    """How many of each class to keep: small classes whole, the rest in equal shares."""
    quotas = [0] * len(sizes)
    remaining = int(total)
    order = sorted(range(len(sizes)), key=lambda i: (sizes[i], i))
    for done, i in enumerate(order):
        left = len(sizes) - done
        quotas[i] = min(int(sizes[i]), remaining // left)
        remaining -= quotas[i]
    return quotas


def balanced_subsample(
    n_total: int,
    max_stimuli: int,
    seed: int = 0,
    classes: Sequence[str] | None = None,
    balanced_by: str | None = None,
) -> Subsample:
    """Rows of at most ``max_stimuli`` of ``n_total`` stimuli, balanced over ``classes``.

    ``classes`` gives each stimulus's class (e.g. a label value); ``None`` draws uniformly.
    All rows are kept when ``n_total <= max_stimuli``.
    """
    if max_stimuli < 2:
        raise ValueError(f"max_stimuli must be at least 2 (got {max_stimuli})")
    if n_total <= max_stimuli:
        counts: dict[str, int] = {}
        if classes is not None:
            for c in classes:
                counts[c] = counts.get(c, 0) + 1
        return Subsample(
            np.arange(n_total, dtype=np.int64),
            n_total,
            seed,
            max_stimuli,
            balanced_by if classes is not None else None,
            dict(sorted(counts.items())),
        )
    rng = np.random.default_rng(seed)
    if classes is None:
        rows = np.sort(rng.choice(n_total, size=max_stimuli, replace=False))
        return Subsample(rows.astype(np.int64), n_total, seed, max_stimuli)
    classes = list(classes)
    if len(classes) != n_total:
        raise ValueError(f"{len(classes)} class values for {n_total} stimuli")
    names = sorted(set(classes))
    members = {name: [] for name in names}
    for row, c in enumerate(classes):
        members[c].append(row)
    quotas = class_quotas([len(members[c]) for c in names], max_stimuli)
    kept = []
    per_class = {}
    for name, quota in zip(names, quotas, strict=True):
        pool = np.asarray(members[name], dtype=np.int64)
        kept.append(pool[np.sort(rng.choice(len(pool), size=quota, replace=False))])
        per_class[name] = quota
    rows = np.sort(np.concatenate(kept)) if kept else np.zeros(0, dtype=np.int64)
    return Subsample(rows, n_total, seed, max_stimuli, balanced_by, per_class)
