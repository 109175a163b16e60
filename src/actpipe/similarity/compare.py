"""Comparing RDMs (RSA): Spearman, Pearson and Kendall's tau-a between condensed RDMs.

For two condensed RDMs ``u`` and ``v`` of the same patterns (``m`` pairs), entries where
either is NaN are left out, then:

* ``spearman``: Pearson correlation of the ranks (ties get their average rank), as
  ``scipy.stats.spearmanr`` and rsatoolbox ``compare(..., method="spearman")``;
* ``pearson``: Pearson correlation of the values (rsatoolbox ``"corr"``);
* ``kendall_tau_a``: ``(concordant - discordant) / (m (m - 1) / 2)``, ties counted in the
  denominator (rsatoolbox ``"tau-a"``), recommended when an RDM (a categorical theory RDM)
  has many ties. Computed in O(m log m) from scipy's tau-b:
  ``tau_a = tau_b * sqrt((m0 - t_u)(m0 - t_v)) / m0`` with ``m0 = m (m - 1) / 2`` and
  ``t_u``, ``t_v`` the tied pairs within ``u`` and within ``v``.

A comparison with a constant RDM (no variance) is NaN.

:class:`RDMCollection` compares many RDMs pairwise: each RDM is ranked and standardised once,
and the correlation matrix is accumulated over slices of the condensed vectors, with the
standardised vectors kept in memory or, past ``memory_bytes``, in a scratch file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import stats

RSA_METHODS = ("spearman", "pearson", "kendall_tau_a")
RSATOOLBOX_METHODS = {"spearman": "spearman", "pearson": "corr", "kendall_tau_a": "tau-a"}


def _valid(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    if u.shape != v.shape:
        raise ValueError(f"RDMs of different sizes: {u.shape} and {v.shape}")
    keep = ~(np.isnan(u) | np.isnan(v))
    if not keep.all():
        u, v = u[keep], v[keep]
    return u, v


def _standardise(x: np.ndarray) -> np.ndarray | None:
    """``(x - mean) / |x - mean|``, or None for a constant vector."""
    centred = x - x.mean()
    norm = np.sqrt(centred @ centred)
    if not norm > 0 or len(x) < 2:
        return None
    return centred / norm


def _pearson(u: np.ndarray, v: np.ndarray) -> float:
    a, b = _standardise(u), _standardise(v)
    if a is None or b is None:
        return float("nan")
    return float(np.clip(a @ b, -1.0, 1.0))


def _tied_pairs(x: np.ndarray) -> int:
    _, counts = np.unique(x, return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def kendall_tau_a(u: np.ndarray, v: np.ndarray) -> float:
    """Kendall's tau-a between two RDMs (NaN entries left out; NaN if one is constant)."""
    u, v = _valid(u, v)
    m = len(u)
    total = m * (m - 1) // 2
    if total == 0:
        return float("nan")
    tu, tv = _tied_pairs(u), _tied_pairs(v)
    if tu == total or tv == total:
        return float("nan")
    tau_b = stats.kendalltau(u, v, variant="b").statistic
    return float(np.clip(tau_b * np.sqrt(float(total - tu) * float(total - tv)) / total, -1, 1))


def rsa(u: np.ndarray, v: np.ndarray, method: str = "spearman") -> float:
    """One RSA comparison of two condensed RDMs (``spearman``, ``pearson``, ``kendall_tau_a``)."""
    if method == "kendall_tau_a":
        return kendall_tau_a(u, v)
    u, v = _valid(u, v)
    if method == "spearman":
        return _pearson(stats.rankdata(u), stats.rankdata(v))
    if method == "pearson":
        return _pearson(u, v)
    raise ValueError(f"unknown RSA method {method!r}; choose from {', '.join(RSA_METHODS)}")


class RDMCollection:
    """Condensed RDMs of the same patterns, compared all against all by one RSA method.

    Add RDMs with :meth:`add`; :meth:`matrix` returns the ``(k, k)`` matrix of comparisons
    (and :meth:`against` compares every RDM with one more, e.g. a theory RDM). RDMs without
    NaN are ranked (Spearman) and standardised once; a pair involving an RDM with NaN is
    compared directly on the entries both have. ``memory_bytes`` bounds what is kept in
    memory: past it the standardised vectors go to a scratch file in ``scratch_dir``.
    """

    def __init__(
        self,
        n_pairs: int,
        method: str = "spearman",
        memory_bytes: int = 1 << 30,
        scratch_dir: str | os.PathLike[str] | None = None,
        capacity: int = 0,
    ) -> None:
        if method not in RSA_METHODS:
            raise ValueError(f"unknown RSA method {method!r}; choose from {', '.join(RSA_METHODS)}")
        self.m = int(n_pairs)
        self.method = method
        self.memory_bytes = int(memory_bytes)
        self._scratch_dir = scratch_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._capacity = max(1, capacity)
        self._rows: np.ndarray | None = None
        self._kinds: list[str] = []  # "std": standardised, "raw": as given, "const"
        self._slot: list[int] = []
        self._used = 0

    # ------------------------------------------------------------------ storage

    def _storage(self) -> np.ndarray:
        if self._rows is None:
            shape = (self._capacity, self.m)
            if self._capacity * self.m * 8 <= self.memory_bytes:
                self._rows = np.empty(shape)
            else:
                self._tmp = tempfile.TemporaryDirectory(
                    prefix=".rsa-scratch-", dir=self._scratch_dir
                )
                self._rows = np.lib.format.open_memmap(
                    Path(self._tmp.name) / "rows.npy", mode="w+", dtype=np.float64, shape=shape
                )
        return self._rows

    def close(self) -> None:
        """Remove the scratch file, if any."""
        self._rows = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> RDMCollection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self._kinds)

    # ------------------------------------------------------------------ adding

    def _transform(self, rdm: np.ndarray) -> np.ndarray:
        return stats.rankdata(rdm) if self.method == "spearman" else rdm

    def add(self, rdm: np.ndarray) -> int:
        """Add one condensed RDM; returns its index."""
        rdm = np.asarray(rdm, dtype=np.float64)
        if rdm.shape != (self.m,):
            raise ValueError(f"RDM of {rdm.shape} entries added to a collection of {self.m}")
        index = len(self._kinds)
        if np.isnan(rdm).any() or self.method == "kendall_tau_a":
            kind, row = "raw", rdm
        else:
            kind, row = "std", _standardise(self._transform(rdm))
            if row is None:
                self._kinds.append("const")
                self._slot.append(-1)
                return index
        rows = self._storage()
        if self._used >= rows.shape[0]:
            raise ValueError(f"RDMCollection: more RDMs than its capacity {rows.shape[0]}")
        rows[self._used] = row
        self._kinds.append(kind)
        self._slot.append(self._used)
        self._used += 1
        return index

    # ------------------------------------------------------------------ comparing

    def _row(self, index: int) -> np.ndarray:
        if self._kinds[index] == "const":
            return np.full(self.m, np.nan)
        return np.asarray(self._storage()[self._slot[index]])

    def matrix(self, slice_entries: int = 1 << 22) -> np.ndarray:
        """All pairwise comparisons ``(k, k)``; 1 on the diagonal of non-constant RDMs."""
        k = len(self._kinds)
        out = np.full((k, k), np.nan)
        std = [i for i in range(k) if self._kinds[i] == "std"]
        if std:
            slots = np.array([self._slot[i] for i in std])
            gram = np.zeros((len(std), len(std)))
            rows = self._storage()
            for a in range(0, self.m, slice_entries):
                part = np.asarray(rows[slots, a : a + slice_entries])
                gram += part @ part.T
            np.clip(gram, -1.0, 1.0, out=gram)
            out[np.ix_(std, std)] = gram
        direct = [i for i in range(k) if self._kinds[i] == "raw"]
        for i in direct:
            for j in range(k):
                if self._kinds[j] == "const" or (j in direct and j < i):
                    continue
                out[i, j] = out[j, i] = rsa(self._row(i), self._row(j), self.method)
        for i in range(k):
            if self._kinds[i] == "std" or (
                self._kinds[i] == "raw"
                and _standardise(self._row(i)[~np.isnan(self._row(i))]) is not None
            ):
                out[i, i] = 1.0
        return out

    def against(self, other: np.ndarray) -> np.ndarray:
        """Every RDM of the collection compared with ``other`` (e.g. a theory RDM): ``(k,)``."""
        other = np.asarray(other, dtype=np.float64)
        k = len(self._kinds)
        out = np.full(k, np.nan)
        if np.isnan(other).any() or self.method == "kendall_tau_a":
            for i in range(k):
                if self._kinds[i] != "const":
                    out[i] = rsa(self._row(i), other, self.method)
            return out
        ref = _standardise(self._transform(other))
        if ref is None:
            return out
        for i in range(k):
            if self._kinds[i] == "std":
                out[i] = float(np.clip(self._row(i) @ ref, -1.0, 1.0))
            elif self._kinds[i] == "raw":
                out[i] = rsa(self._row(i), other, self.method)
        return out


def compare_rdms(rdms: Sequence[np.ndarray], method: str = "spearman") -> np.ndarray:
    """The ``(k, k)`` matrix of RSA comparisons between condensed RDMs of the same patterns."""
    if not rdms:
        return np.zeros((0, 0))
    with RDMCollection(len(rdms[0]), method, capacity=len(rdms)) as coll:
        for rdm in rdms:
            coll.add(rdm)
        return coll.matrix()
