"""Feature preparation: the matrix that is clustered, built without holding the layer.

Steps, in this order (see docs/clustering.md for the exact definitions):

1. rows: replicate mean per stimulus (default) or every replicate as its own row;
2. a scan pass: rows holding NaN or inf are an error naming the layer and the rows, or are
   dropped (``nonfinite: drop``, recorded); per-feature mean and variance of the kept rows;
3. optional standardization ``(x - mean) / std`` (a constant feature has std 0 and is divided
   by 1, so it becomes 0);
4. optional reduction to ``n_components`` dimensions: PCA (incremental PCA for streaming
   methods, scikit-learn's PCA for in-memory ones) or truncated SVD (in-memory methods only).

:class:`PreparedRows` hands the result to a method: streamed in blocks, sampled, or loaded.
:class:`ArrayRows` does the same for a matrix already in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..errors import ClusteringError
from .params import FeatureOptions
from .source import LayerSource

log = logging.getLogger(__name__)


class Rows(Protocol):
    """What a clustering method sees: ``n`` rows of ``dim`` prepared features.

    Rows are numbered ``0..n-1`` in storage order. ``blocks(order)`` streams them (``order``
    permutes *units*, the stimuli; each unit brings its rows in order), ``sample`` reads a
    seeded subset, ``load`` the whole matrix.
    """

    n: int
    dim: int
    n_units: int
    where: str

    def blocks(
        self, unit_order: np.ndarray | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]: ...

    def sample(self, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]: ...

    def load(self) -> np.ndarray: ...


SAMPLE_BYTES = 64 << 20
"""A seeded sample (initialisation, threshold search, silhouette) holds at most this many
bytes of float64 rows, so wide layers take fewer sampled rows."""


def sample_size(requested: int, dim: int, minimum: int = 2) -> int:
    """``requested`` rows, lowered to fit :data:`SAMPLE_BYTES` (never below ``minimum``)."""
    return max(minimum, min(int(requested), SAMPLE_BYTES // (8 * max(1, dim))))


def sample_positions(n: int, m: int, seed: int) -> np.ndarray:
    """A seeded sorted sample of ``min(n, m)`` row numbers out of ``n`` (all when ``m >= n``)."""
    if m >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=m, replace=False))


class ArrayRows:
    """:class:`Rows` over a matrix in memory (each row is its own unit)."""

    def __init__(self, X: np.ndarray, where: str = "", block_rows: int = 4096) -> None:
        self.X = np.asarray(X, dtype=np.float64)
        if self.X.ndim != 2:
            raise ClusteringError(f"{where}: expected a 2-D matrix, got shape {self.X.shape}")
        self.n, self.dim = self.X.shape
        self.n_units = self.n
        self.where = where
        self.block_rows = max(1, int(block_rows))

    def blocks(
        self, unit_order: np.ndarray | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        order = np.arange(self.n) if unit_order is None else np.asarray(unit_order)
        for start in range(0, len(order), self.block_rows):
            rows = order[start : start + self.block_rows]
            yield rows, self.X[rows]

    def sample(self, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rows = sample_positions(self.n, m, seed)
        return rows, self.X[rows]

    def load(self) -> np.ndarray:
        return self.X


# ---------------------------------------------------------------------------- scan


@dataclass
class LayerScan:
    """What one pass over a layer learns: bad rows, kept rows, per-feature mean and variance."""

    n_examples: int
    nonfinite: np.ndarray  # example indices with NaN or inf
    mean: np.ndarray
    var: np.ndarray

    @property
    def n_kept(self) -> int:
        return self.n_examples - len(self.nonfinite)


def scan_layer(source: LayerSource, options: FeatureOptions, where: str) -> LayerScan:
    """One streaming pass: find non-finite rows; mean and variance of the finite ones.

    Means and variances are merged block by block (Chan et al.'s pairwise update), in float64.
    """
    bad: list[np.ndarray] = []
    count = 0
    mean = np.zeros(source.feature_dim)
    m2 = np.zeros(source.feature_dim)
    for examples, X in source.blocks():
        finite = np.isfinite(X).all(axis=1)
        if not finite.all():
            bad.append(examples[~finite])
            X = X[finite]
        if X.shape[0] == 0:
            continue
        b = X.shape[0]
        b_mean = X.mean(axis=0)
        b_m2 = ((X - b_mean) ** 2).sum(axis=0)
        delta = b_mean - mean
        total = count + b
        mean = mean + delta * (b / total)
        m2 = m2 + b_m2 + delta**2 * (count * b / total)
        count = total
    nonfinite = np.concatenate(bad) if bad else np.zeros(0, dtype=np.int64)
    if nonfinite.size:
        ids = source.example_ids
        shown = ", ".join(repr(ids[i]) for i in nonfinite[:10])
        more = f" (and {nonfinite.size - 10} more)" if nonfinite.size > 10 else ""
        if options.nonfinite == "error":
            raise ClusteringError(
                f"{where}: NaN or inf in {nonfinite.size} of {source.n_examples} row(s): "
                f"{shown}{more}; fix the activations, or set nonfinite: drop in the parameter "
                "set to leave these rows out (recorded in metadata.json)"
            )
        log.warning(
            "%s: dropping %d row(s) with NaN or inf: %s%s", where, nonfinite.size, shown, more
        )
    if count == 0:
        raise ClusteringError(f"{where}: every row holds NaN or inf; nothing to cluster")
    var = m2 / count
    return LayerScan(source.n_examples, np.sort(nonfinite), mean, var)


# ---------------------------------------------------------------------------- preparation


def rebatch(blocks: Iterator[np.ndarray], size: int, minimum: int = 1) -> Iterator[np.ndarray]:
    """Blocks of exactly ``size`` rows, whatever the input blocks were; the last one holds the
    rest (merged into the one before when shorter than ``minimum``)."""
    buffer: list[np.ndarray] = []
    held = 0
    previous: np.ndarray | None = None
    for block in blocks:
        buffer.append(block)
        held += block.shape[0]
        while held >= size:
            joined = np.concatenate(buffer) if len(buffer) > 1 else buffer[0]
            if previous is not None:
                yield previous
            previous = joined[:size]
            rest = joined[size:]
            buffer = [rest] if rest.shape[0] else []
            held = rest.shape[0]
    tail = np.concatenate(buffer) if buffer else None
    if tail is not None and tail.shape[0] < minimum and previous is not None:
        yield np.concatenate([previous, tail])
        return
    if previous is not None:
        yield previous
    if tail is not None and tail.shape[0]:
        yield tail


class FeaturePrep:
    """Standardisation and reduction fitted on one layer; :meth:`transform` applies them."""

    def __init__(self, options: FeatureOptions, scan: LayerScan, where: str) -> None:
        self.options = options
        self.where = where
        self.in_dim = int(scan.mean.shape[0])
        std = np.sqrt(scan.var)
        self.constant = std == 0
        if options.standardize:
            self.center: np.ndarray | None = scan.mean
            self.scale: np.ndarray | None = np.where(self.constant, 1.0, std)
        else:
            self.center = self.scale = None
        self.reducer: Any = None
        self.total_variance = float(scan.var.sum())

    @property
    def dim(self) -> int:
        if self.options.reduce == "none":
            return self.in_dim
        return int(self.options.n_components or 0)

    def standardize(self, X: np.ndarray) -> np.ndarray:
        if self.center is None:
            return X
        return (X - self.center) / self.scale

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = self.standardize(X)
        if self.reducer is not None:
            X = self.reducer.transform(X)
        return np.ascontiguousarray(X, dtype=np.float64)

    def _check_components(self, n_rows: int) -> int:
        d = int(self.options.n_components or 0)
        limit = min(n_rows, self.in_dim)
        if d > limit:
            raise ClusteringError(
                f"{self.where}: n_components={d} but the layer has {n_rows} row(s) and "
                f"{self.in_dim} feature(s); choose n_components <= {limit}"
            )
        return d

    def fit_reducer(self, X_standardized: np.ndarray) -> None:
        """Fit PCA or truncated SVD on the whole (standardized) matrix."""
        if self.options.reduce == "none":
            return
        d = self._check_components(X_standardized.shape[0])
        if self.options.reduce == "pca":
            from sklearn.decomposition import PCA

            self.reducer = PCA(n_components=d, random_state=self.options.seed)
        else:
            from sklearn.decomposition import TruncatedSVD

            if d >= self.in_dim:
                raise ClusteringError(
                    f"{self.where}: reduce='svd' needs n_components < {self.in_dim} features"
                )
            self.reducer = TruncatedSVD(n_components=d, random_state=self.options.seed)
        self.reducer.fit(X_standardized)

    def fit_reducer_streaming(self, blocks: Iterator[np.ndarray], n_rows: int) -> None:
        """Fit incremental PCA block by block (each partial fit sees at least d rows)."""
        if self.options.reduce == "none":
            return
        if self.options.reduce != "pca":
            raise ClusteringError(f"{self.where}: streaming reduction is 'pca' only")
        from sklearn.decomposition import IncrementalPCA

        d = self._check_components(n_rows)
        self.reducer = IncrementalPCA(n_components=d)
        for batch in rebatch((self.standardize(b) for b in blocks), max(d, 256), minimum=d):
            self.reducer.partial_fit(batch)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            **self.options.to_dict(),
            "input_dim": self.in_dim,
            "dim": self.dim,
            "n_constant_features": int(self.constant.sum()),
        }
        if self.reducer is not None:
            out["explained_variance_ratio"] = float(
                np.sum(getattr(self.reducer, "explained_variance_ratio_", [np.nan]))
            )
            out["reducer"] = type(self.reducer).__name__
        return out


def describe_space(features: dict[str, Any]) -> str:
    """In words, the space a layer was clustered in (what its centroids are means of), from
    the ``features`` record of :meth:`FeaturePrep.describe`."""
    steps = ["replicate mean" if features.get("replicates") == "mean" else "each replicate"]
    if features.get("input") == "activations_x_gradients":
        steps.append("activations x gradients")
    if features.get("standardize"):
        steps.append("standardized")
    if features.get("reduce", "none") != "none":
        steps.append(f"{features['reduce']} to {features['n_components']} dims")
    return ", ".join(steps)


class PreparedRows:
    """:class:`Rows` of one layer: finite rows only, standardized and reduced as configured.

    Row ``i`` is the ``i``-th kept example in storage order; :attr:`examples` maps rows back
    to example indices of the :class:`LayerSource`.
    """

    def __init__(
        self, source: LayerSource, options: FeatureOptions, where: str, streaming: bool
    ) -> None:
        self.source = source
        self.options = options
        self.where = where
        self.scan = scan_layer(source, options, where)
        keep = np.ones(source.n_examples, dtype=bool)
        keep[self.scan.nonfinite] = False
        self.keep = keep
        self.examples = np.flatnonzero(keep)
        self.position = np.cumsum(keep) - 1  # row number of each kept example
        self.n = int(keep.sum())
        self.n_units = source.n_stimuli
        self.prep = FeaturePrep(options, self.scan, where)
        self._loaded: np.ndarray | None = None
        if streaming:
            self.prep.fit_reducer_streaming(
                (X for _, X in self._kept_blocks(None, transform=False)), self.n
            )
        self.dim = self.prep.dim

    @property
    def total_variance(self) -> float:
        return self.prep.total_variance

    def _kept_blocks(
        self, unit_order: np.ndarray | None, transform: bool = True
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for examples, X in self.source.blocks(unit_order):
            ok = self.keep[examples]
            if not ok.all():
                examples, X = examples[ok], X[ok]
            if examples.size == 0:
                continue
            yield self.position[examples], (self.prep.transform(X) if transform else X)

    def blocks(
        self, unit_order: np.ndarray | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if self._loaded is not None:
            order = None
            if unit_order is not None:
                examples = self.source.examples_of(unit_order)
                order = self.position[examples[self.keep[examples]]]
            yield from ArrayRows(self._loaded).blocks(order)
            return
        yield from self._kept_blocks(unit_order)

    def sample(self, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rows = sample_positions(self.n, m, seed)
        if self._loaded is not None:
            return rows, self._loaded[rows]
        examples = self.examples[rows]
        stimuli = np.unique(examples // self.source.rows_per_stimulus)
        got, X = self.source.read(stimuli)  # stimuli ascending: examples ascending
        if got.shape[0] != examples.shape[0]:
            X = X[np.isin(got, examples)]
        return rows, self.prep.transform(X)

    def load(self) -> np.ndarray:
        """The whole prepared matrix (in-memory methods; fits PCA/SVD on it)."""
        if self._loaded is None:
            X = np.empty((self.n, self.prep.in_dim))
            for rows, block in self._kept_blocks(None, transform=False):
                X[rows] = self.prep.standardize(block)
            if self.prep.reducer is None and self.options.reduce != "none":
                self.prep.fit_reducer(X)
            if self.prep.reducer is not None:
                X = np.ascontiguousarray(self.prep.reducer.transform(X))
            self._loaded = X
            self.dim = X.shape[1]
        return self._loaded
