"""Linear CKA with the unbiased HSIC estimator, streamed over stimuli in bounded memory.

**Definition.** For ``n`` stimuli, layers ``X`` (``n x p``) and ``Y`` (``n x q``) and linear
kernels ``K = X Xᵀ``, ``L = Y Yᵀ``, let ``K̃``, ``L̃`` be ``K``, ``L`` with zero diagonal. The
unbiased HSIC estimator (Song et al. 2012; used for CKA by Nguyen, Raghu & Kornblith 2021) is

    HSIC₁(K, L) = [ tr(K̃ L̃) + (1ᵀK̃1)(1ᵀL̃1) / ((n-1)(n-2)) - 2/(n-2) · 1ᵀK̃L̃1 ] / (n(n-3))

and ``CKA(X, Y) = HSIC₁(K, L) / sqrt(HSIC₁(K, K) HSIC₁(L, L))``. It needs ``n >= 4``. It is
invariant to rotating either layer, to scaling it, and to adding a constant vector to every
row (``HSIC₁`` is a U-statistic of the U-centred kernels), so no centring pass is needed.

**Feature-space form (what is computed).** With ``q_i = |x_i|²``, ``r_i = |y_i|²``,
``s = Σ_i x_i``, ``t = Σ_i y_i``, ``C = XᵀY``, ``u = Σ_i r_i x_i``, ``v = Σ_i q_i y_i``:

    tr(K̃ L̃)  = |C|_F² - Σ_i q_i r_i
    1ᵀK̃1     = |s|² - Σ_i q_i          (and 1ᵀL̃1 = |t|² - Σ_i r_i)
    1ᵀK̃L̃1   = sᵀ C t - s·u - t·v + Σ_i q_i r_i

Every term is a sum over stimuli, accumulated block by block: memory holds ``C`` (``p x q``)
and vectors, never an ``n x n`` Gram nor a whole layer. Each block is first shifted by a
constant vector (the mean of the first block), which leaves the estimator unchanged and keeps
the sums well conditioned.

**Wide layers.** ``C`` costs ``n p q`` operations and ``p q`` memory, for every pair. A layer
is *exact* (used as it is) when that is affordable: ``method: exact`` always, ``auto`` when the
estimated cost of all pairs is within ``exact_max_gflop`` and the layer fits the memory
budget. Otherwise (``method: sketch``, or ``auto`` beyond the budget) every layer wider than
``2 k`` (``k = sketch_dim``) is replaced by two independent seeded orthogonal sketches
``X G₁`` and ``X G₂`` (``G = sqrt(p/k) Q`` with ``Q`` a ``p x k`` orthonormal basis of a
uniformly random subspace, from the QR decomposition of a Gaussian matrix, so
``E[G Gᵀ] = I``). Since
``HSIC₁`` is bilinear in the two kernels and ``E[X G Gᵀ Xᵀ] = K``, HSIC between sketches of
*different* draws is an unbiased estimate of the exact HSIC:

* cross-layer HSIC: the mean of ``HSIC₁(X G₁, Y H₁)`` and ``HSIC₁(X G₂, Y H₂)`` (an exact
  layer ``Y`` with ``X G₁`` and with ``X G₂``): unbiased, and as accurate as averaging all
  four pairings, for half the products;
* a sketched layer's own HSIC: ``HSIC₁(X G₁, X G₂)`` (never a sketch with itself, which
  would be biased upwards by about ``(1 + r)/k`` for a layer of effective rank ``r``).

CKA is then a ratio of unbiased estimates. For a fixed ``B`` = ``Xᵀ U(L) X`` (``U`` the
U-centring), ``Var[tr(Gᵀ B G)] = 2 |B|_F² / k`` for a Gaussian sketch (an orthogonal one
does slightly better), so the relative error of each HSIC is about ``sqrt(2/k)`` at most and
smaller when ``B``'s spectrum is spread;
``tests/test_similarity_cka.py`` measures the error of CKA against the exact value on layers
with realistic spectra, and the benchmark reports both. Sketched pairs are marked in the
output (``estimator``).

**Few stimuli.** HSIC depends on a layer only through ``K = X Xᵀ``. When a layer has more
features than stimuli (``p > n``) and fits in one block, it is read once and replaced,
exactly, by the ``n x n`` factor ``Rᵀ`` of the QR decomposition ``Xᵀ = Q R``
(``Rᵀ R = X Xᵀ``), so small stimulus sets cost ``n`` columns per layer instead of ``p``.

**Precision.** Exact passes are float64 throughout. A pass that holds a sketched layer
computes its sketches and per-block products in float32 and sums the blocks in float64:
rounding then contributes a relative error of about 1e-6, far below the sketch's own.

**Memory.** Layers are packed into groups whose accumulators fit ``memory_bytes``; each pair
of groups is one streaming pass over the stimuli (one pass when everything fits). Sketch
matrices are drawn once per pass from seeds derived from ``(seed, model, layer, sketch)``,
so the same layer gets the same sketches in every run and every comparison.
"""

from __future__ import annotations

import logging
import math
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger("actpipe.similarity")

CKA_METHODS = ("auto", "exact", "sketch")


# --------------------------------------------------------------------------- in memory


def hsic_terms(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased ``HSIC₁`` of linear kernels of in-memory ``(n, p)`` and ``(n, q)`` arrays."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = x.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"layers with different numbers of stimuli: {n} and {y.shape[0]}")
    if n < 4:
        raise ValueError(f"the unbiased HSIC needs at least 4 stimuli, got {n}")
    x = x - x[: min(n, 1024)].mean(axis=0)
    y = y - y[: min(n, 1024)].mean(axis=0)
    acc = _PairAccumulator(x.shape[1], y.shape[1])
    acc.add(x, y)
    return acc.hsic(n)


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of two in-memory layers ``(n, p)``, ``(n, q)`` (unbiased HSIC, exact)."""
    xy = hsic_terms(x, y)
    xx = hsic_terms(x, x)
    yy = hsic_terms(y, y)
    if not (xx > 0 and yy > 0):
        return float("nan")
    return float(xy / math.sqrt(xx * yy))


class _PairAccumulator:
    """The sums of the feature-space form for one pair of (shifted) arrays."""

    def __init__(self, p: int, q: int) -> None:
        self.c = np.zeros((p, q))
        self.s = np.zeros(p)
        self.t = np.zeros(q)
        self.u = np.zeros(p)
        self.v = np.zeros(q)
        self.qq = 0.0
        self.qsum = 0.0
        self.rsum = 0.0

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        qx = np.einsum("ij,ij->i", x, x)
        ry = np.einsum("ij,ij->i", y, y)
        self.c += x.T @ y
        self.s += x.sum(axis=0)
        self.t += y.sum(axis=0)
        self.u += x.T @ ry
        self.v += y.T @ qx
        self.qq += float(qx @ ry)
        self.qsum += float(qx.sum())
        self.rsum += float(ry.sum())

    def hsic(self, n: int) -> float:
        return _hsic(
            float(np.einsum("ij,ij->", self.c, self.c)),
            float(self.s @ self.c @ self.t),
            float(self.s @ self.s),
            float(self.t @ self.t),
            float(self.s @ self.u),
            float(self.t @ self.v),
            self.qq,
            self.qsum,
            self.rsum,
            n,
        )


def _hsic(
    c_sq: float,
    s_c_t: float,
    s_sq: float,
    t_sq: float,
    s_u: float,
    t_v: float,
    qq: float,
    qsum: float,
    rsum: float,
    n: int,
) -> float:
    """``HSIC₁`` from the accumulated sums (see the module docstring)."""
    trace = c_sq - qq
    ones_k = s_sq - qsum
    ones_l = t_sq - rsum
    ones_kl = s_c_t - s_u - t_v + qq
    return (trace + ones_k * ones_l / ((n - 1) * (n - 2)) - 2.0 * ones_kl / (n - 2)) / (n * (n - 3))


# --------------------------------------------------------------------------- streaming


@dataclass(frozen=True)
class CKAOptions:
    """How all-pairs CKA is computed (see the module docstring)."""

    method: str = "auto"
    sketch_dim: int = 256
    exact_max_gflop: float = 200.0
    seed: int = 0
    memory_bytes: int = 1 << 30
    block_bytes: int = 64 << 20
    prefetch: bool = True

    def __post_init__(self) -> None:
        if self.method not in CKA_METHODS:
            raise ValueError(f"cka.method {self.method!r}: choose one of {', '.join(CKA_METHODS)}")
        if self.sketch_dim < 1:
            raise ValueError("cka.sketch_dim must be at least 1")


@dataclass
class LayerInput:
    """One layer to compare: its name, width, and how to read rows as float64 ``(b, p)``."""

    model: str
    layer: str
    feature_dim: int
    read: Callable[[np.ndarray], np.ndarray]
    """``read(positions)``: rows of the shared stimuli at ``positions`` (increasing)."""


@dataclass
class CKAResult:
    """All-pairs linear CKA of a list of layers, with how each entry was estimated."""

    matrix: np.ndarray
    estimator: list[str]
    """Per layer: ``exact`` or ``sketch{k}x2``."""
    self_hsic: np.ndarray
    n_stimuli: int
    cost: dict[str, Any] = field(default_factory=dict)

    def exact(self, a: int, b: int) -> bool:
        return self.estimator[a] == "exact" and self.estimator[b] == "exact"


def _seed_for(seed: int, model: str, layer: str, draw: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(
        [
            int(seed) & 0xFFFFFFFF,
            zlib.crc32(model.encode("utf-8")),
            zlib.crc32(layer.encode("utf-8")),
            draw,
        ]
    )


def sketch_matrix(seed: int, model: str, layer: str, draw: int, p: int, k: int) -> np.ndarray:
    """The ``(p, k)`` sketch ``draw`` (0 or 1) of a layer: ``sqrt(p/k) Q``, ``Q`` orthonormal.

    ``Q`` spans a uniformly random ``k``-dimensional subspace (orthonormalised seeded Gaussian
    matrix), so ``E[G Gᵀ] = I``; ``k <= p``.
    """
    from scipy.linalg import solve_triangular

    rng = np.random.default_rng(_seed_for(seed, model, layer, draw))
    g = rng.standard_normal((p, k))
    # Cholesky QR: Q = G L⁻ᵀ with L Lᵀ = GᵀG spans the same subspace as G (a Gaussian G is
    # well conditioned for k <= p / 2); all matrix products, much faster than Householder.
    lower = np.linalg.cholesky(g.T @ g)
    q = solve_triangular(lower, g.T, lower=True).T
    return q * math.sqrt(p / k)


@dataclass
class _View:
    layer: int
    draw: int  # -1: the layer itself
    width: int
    start: int = 0  # first column in its group's block


def _plan(
    layers: Sequence[LayerInput], n: int, options: CKAOptions
) -> tuple[list[str], list[list[_View]]]:
    """Per layer ``exact`` or sketched, and its views."""
    k = options.sketch_dim
    max_cols = int(math.sqrt(options.memory_bytes / 16))
    dims = [layer.feature_dim for layer in layers]
    exact_gflop = 2.0 * n * sum(dims) ** 2 / 2 / 1e9
    if options.method == "exact":
        too_wide = [lay for lay in layers if lay.feature_dim > max_cols]
        if too_wide:
            lay = too_wide[0]
            need = 16 * lay.feature_dim**2 / 2**20
            raise ValueError(
                f"cka.method exact: layer {lay.layer!r} of model {lay.model!r} has "
                f"{lay.feature_dim} features; its exact cross products need about {need:.0f} "
                f"MB, more than the memory budget ({options.memory_bytes / 2**20:.0f} MB); "
                "raise similarity.memory_mb or use cka.method auto or sketch"
            )
        sketch = [False] * len(layers)
    elif options.method == "sketch":
        sketch = [d > 2 * k for d in dims]
    else:
        cheap = exact_gflop <= options.exact_max_gflop
        sketch = [d > 2 * k and (not cheap or d > max_cols) for d in dims]
    estimators, views = [], []
    for i, (d, s) in enumerate(zip(dims, sketch, strict=True)):
        if s:
            estimators.append(f"sketch{k}x2")
            views.append([_View(i, 0, k), _View(i, 1, k)])
        else:
            estimators.append("exact")
            views.append([_View(i, -1, d)])
    return estimators, views


def _groups(views: list[list[_View]], max_cols: int) -> list[list[int]]:
    """Layers packed in order into groups of at most ``max_cols`` view columns."""
    groups: list[list[int]] = []
    width = 0
    for i, layer_views in enumerate(views):
        w = sum(v.width for v in layer_views)
        if not groups or width + w > max_cols:
            groups.append([])
            width = 0
        groups[-1].append(i)
        width += w
    return groups


class _Pass:
    """One streaming pass accumulating the sums of every view pair of two groups."""

    def __init__(self, views_a: list[_View], views_b: list[_View] | None) -> None:
        self.views_a = views_a
        self.views_b = views_b  # None: the pass of a group with itself
        self.width_a = sum(v.width for v in views_a)
        self.width_b = self.width_a if views_b is None else sum(v.width for v in views_b)
        self.c = np.zeros((self.width_a, self.width_b))
        self.s_a = np.zeros(self.width_a)
        self.s_b = self.s_a if views_b is None else np.zeros(self.width_b)
        na, nb = len(views_a), len(views_a if views_b is None else views_b)
        self.u_a = np.zeros((self.width_a, nb))  # Σ_i q^b_i z^a_i
        self.u_b = self.u_a if views_b is None else np.zeros((self.width_b, na))
        self.qq = np.zeros((na, nb))
        self.qsum_a = np.zeros(na)
        self.qsum_b = self.qsum_a if views_b is None else np.zeros(nb)
        self.shift_a: np.ndarray | None = None
        self.shift_b: np.ndarray | None = None

    @staticmethod
    def _norms(z: np.ndarray, views: list[_View]) -> np.ndarray:
        out = np.empty((z.shape[0], len(views)), dtype=z.dtype)
        for j, v in enumerate(views):
            part = z[:, v.start : v.start + v.width]
            out[:, j] = np.einsum("ij,ij->i", part, part)
        return out

    def add(self, z_a: np.ndarray, z_b: np.ndarray | None) -> None:
        if self.shift_a is None:
            self.shift_a = z_a.mean(axis=0, dtype=np.float64).astype(z_a.dtype)
            if z_b is not None:
                self.shift_b = z_b.mean(axis=0, dtype=np.float64).astype(z_b.dtype)
        z_a -= self.shift_a
        q_a = self._norms(z_a, self.views_a)
        if z_b is None:
            self.c += z_a.T @ z_a
            self.s_a += z_a.sum(axis=0, dtype=np.float64)
            self.u_a += z_a.T @ q_a
            self.qq += q_a.T @ q_a
            self.qsum_a += q_a.sum(axis=0, dtype=np.float64)
            return
        z_b -= self.shift_b
        q_b = self._norms(z_b, self.views_b)
        self.c += z_a.T @ z_b
        self.s_a += z_a.sum(axis=0, dtype=np.float64)
        self.s_b += z_b.sum(axis=0, dtype=np.float64)
        self.u_a += z_a.T @ q_b
        self.u_b += z_b.T @ q_a
        self.qq += q_a.T @ q_b
        self.qsum_a += q_a.sum(axis=0, dtype=np.float64)
        self.qsum_b += q_b.sum(axis=0, dtype=np.float64)

    def hsic(self, a: int, b: int, n: int) -> float:
        """``HSIC₁`` of view ``a`` (of group A) and view ``b`` (of group B)."""
        va = self.views_a[a]
        vb = (self.views_a if self.views_b is None else self.views_b)[b]
        ca = slice(va.start, va.start + va.width)
        cb = slice(vb.start, vb.start + vb.width)
        c = self.c[ca, cb]
        s, t = self.s_a[ca], self.s_b[cb]
        return _hsic(
            float(np.einsum("ij,ij->", c, c)),
            float(s @ c @ t),
            float(s @ s),
            float(t @ t),
            float(s @ self.u_a[ca, b]),
            float(t @ self.u_b[cb, a]),
            float(self.qq[a, b]),
            float(self.qsum_a[a]),
            float(self.qsum_b[b]),
            n,
        )


def _products(ids_a: list[int], ids_b: list[int] | None, views: list[list[_View]]) -> list[_Pass]:
    """The products one pass accumulates for groups A and B (``ids_b`` None: A with itself).

    * exact views and first sketches of A with those of B;
    * exact views and second sketches of A with those of B (exact pairs again, unused);
    * within a group, each sketched layer's first sketch with its second (its own HSIC).
    """

    def chosen(ids: list[int], keep: Callable[[_View], bool]) -> list[_View]:
        out, col = [], 0
        for i in ids:
            for v in views[i]:
                if keep(v):
                    out.append(_View(v.layer, v.draw, v.width, col))
                    col += v.width
        return out

    first = chosen(ids_a, lambda v: v.draw <= 0)
    second = chosen(ids_a, lambda v: v.draw != 0)
    sketched_a = any(v.draw == 1 for v in second)
    if ids_b is None:
        products = [_Pass(first, None)]
        if sketched_a:
            products.append(_Pass(second, None))
        for i in ids_a:
            if len(views[i]) == 2:
                v0, v1 = views[i]
                products.append(_Pass([_View(i, v0.draw, v0.width)], [_View(i, v1.draw, v1.width)]))
        return products
    products = [_Pass(first, chosen(ids_b, lambda v: v.draw <= 0))]
    second_b = chosen(ids_b, lambda v: v.draw != 0)
    if sketched_a or any(v.draw == 1 for v in second_b):
        products.append(_Pass(second, second_b))
    return products


def _stream(
    layers: Sequence[LayerInput],
    union: list[int],
    products: list[_Pass],
    sketches: dict[tuple[int, int], np.ndarray],
    n: int,
    options: CKAOptions,
    number: int,
) -> int:
    """One pass over the stimuli: read the ``union`` layers block by block into ``products``.

    The next block is read in a background thread while the current one is multiplied. When
    the pass holds a sketched layer, sketches and block products are float32 (sums over
    blocks stay float64); an all-exact pass is float64 throughout. Returns the bytes read.
    """
    dtype = np.float32 if sketches else np.float64
    sketches = {key: g.astype(dtype, copy=False) for key, g in sketches.items()}
    row_bytes = sum(8 * layers[i].feature_dim * 2 for i in union)
    step = int(max(16, min(n, options.block_bytes // max(1, row_bytes))))
    log.info(
        "CKA pass %d: %d layer(s), products of %s view columns, blocks of %d stimuli",
        number,
        len(union),
        ", ".join(f"{p.width_a} x {p.width_b}" for p in products[:2]),
        step,
    )

    def load(start: int) -> dict[int, np.ndarray]:
        positions = np.arange(start, min(n, start + step))
        return {i: layers[i].read(positions) for i in union}

    def build(parts: dict[tuple[int, int], np.ndarray], views: list[_View]) -> np.ndarray:
        rows = next(iter(parts.values())).shape[0]
        z = np.empty((rows, sum(v.width for v in views)), dtype=dtype)
        for v in views:
            z[:, v.start : v.start + v.width] = parts[(v.layer, v.draw)]
        return z

    starts = list(range(0, n, step))
    total = 0
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(load, starts[0]) if options.prefetch else None
        for b, start in enumerate(starts):
            blocks = pending.result() if pending is not None else load(start)
            more = options.prefetch and b + 1 < len(starts)
            pending = pool.submit(load, starts[b + 1]) if more else None
            total += sum(x.nbytes for x in blocks.values())
            parts: dict[tuple[int, int], np.ndarray] = {}
            for i in union:
                x = blocks.pop(i).astype(dtype, copy=False)
                draws = [key[1] for key in sketches if key[0] == i]
                if not draws:
                    parts[(i, -1)] = x
                for d in draws:
                    parts[(i, d)] = x @ sketches[(i, d)]
            for product in products:
                z_a = build(parts, product.views_a)
                z_b = None if product.views_b is None else build(parts, product.views_b)
                product.add(z_a, z_b)
    return total


def _compressible(layers: Sequence[LayerInput], n: int, options: CKAOptions) -> list[bool]:
    """Which layers :func:`_compress` replaces: wider than ``n`` and read in one block."""
    out = []
    budget = options.memory_bytes // 4
    for layer in layers:
        ok = (
            layer.feature_dim > n
            and 8 * n * layer.feature_dim <= options.block_bytes
            and 8 * n * n <= budget
        )
        budget -= 8 * n * n if ok else 0
        out.append(ok)
    return out


def _compress(
    layers: Sequence[LayerInput], n: int, options: CKAOptions
) -> tuple[list[LayerInput], list[bool]]:
    """Layers wider than ``n`` that fit one block, replaced exactly by ``n`` columns.

    Only when the computation will then be exact (``method: exact``, or ``auto`` within
    ``exact_max_gflop``): sketched layers need no compression.
    """
    ok = _compressible(layers, n, options)
    widths = [n if c else layer.feature_dim for c, layer in zip(ok, layers, strict=True)]
    exact_gflop = 2.0 * n * sum(widths) ** 2 / 2 / 1e9
    if options.method == "sketch" or (
        options.method == "auto" and exact_gflop > options.exact_max_gflop
    ):
        return list(layers), [False] * len(layers)
    out, compressed = [], []
    for layer, use in zip(layers, ok, strict=True):
        if use:
            x = layer.read(np.arange(n))
            x -= x.mean(axis=0)
            r = np.linalg.qr(x.T, mode="r")
            factor = np.ascontiguousarray(r.T)

            def read(positions: np.ndarray, factor: np.ndarray = factor) -> np.ndarray:
                return factor[positions]

            out.append(LayerInput(layer.model, layer.layer, n, read))
            compressed.append(True)
        else:
            out.append(layer)
            compressed.append(False)
    return out, compressed


def cka_matrix(
    layers: Sequence[LayerInput], n_stimuli: int, options: CKAOptions | None = None
) -> CKAResult:
    """Linear CKA (unbiased HSIC) between every pair of ``layers`` over ``n_stimuli`` stimuli.

    Each layer's ``read(positions)`` returns its rows for the given positions of the shared
    stimulus list, float64 ``(len(positions), feature_dim)``; the layers are read in blocks of
    about ``options.block_bytes``, all layers of a pass for the same positions. See the
    module docstring for the estimator and when it is exact.
    """
    options = options or CKAOptions()
    n = int(n_stimuli)
    if n < 4:
        raise ValueError(f"CKA with the unbiased HSIC needs at least 4 stimuli, got {n}")
    started = time.perf_counter()
    original = list(layers)
    layers, compressed = _compress(original, n, options)
    estimators, views = _plan(layers, n, options)
    max_cols = max(
        int(math.sqrt(options.memory_bytes / 16)), max(sum(v.width for v in lv) for lv in views)
    )
    groups = _groups(views, max_cols)
    n_layers = len(layers)
    hsic: dict[tuple[int, int, int, int], float] = {}  # (layer, draw, layer, draw)
    macs = 0.0
    bytes_read = 0
    passes = 0
    accumulator_bytes = 0
    for gi in range(len(groups)):
        for gj in range(gi, len(groups)):
            same = gi == gj
            ids_a, ids_b = groups[gi], groups[gj]
            union = ids_a if same else ids_a + ids_b
            products = _products(ids_a, None if same else ids_b, views)
            sketches = {
                (i, v.draw): sketch_matrix(
                    options.seed,
                    layers[i].model,
                    layers[i].layer,
                    v.draw,
                    layers[i].feature_dim,
                    v.width,
                )
                for i in union
                for v in views[i]
                if v.draw >= 0
            }
            accumulator_bytes = max(accumulator_bytes, sum(p.c.nbytes for p in products))
            bytes_read += _stream(layers, union, products, sketches, n, options, passes + 1)
            for g in sketches.values():
                macs += float(n) * g.shape[0] * g.shape[1]
            passes += 1
            # HSIC of every view pair the products hold.
            for product in products:
                macs += float(n) * product.width_a * product.width_b
                list_b = product.views_a if product.views_b is None else product.views_b
                for a, va in enumerate(product.views_a):
                    for b, vb in enumerate(list_b):
                        if product.views_b is None and b < a:
                            continue
                        if product is not products[0] and va.draw < 0 and vb.draw < 0:
                            continue  # exact pairs: taken from the first product
                        value = product.hsic(a, b, n)
                        hsic[(va.layer, va.draw, vb.layer, vb.draw)] = value
                        hsic[(vb.layer, vb.draw, va.layer, va.draw)] = value
            del products, sketches
    self_hsic = np.empty(n_layers)
    for i in range(n_layers):
        draws = [v.draw for v in views[i]]
        # exact: the layer with itself; sketched: its first sketch with its second
        self_hsic[i] = hsic[(i, draws[0], i, draws[-1])]
    matrix = np.full((n_layers, n_layers), np.nan)
    for i in range(n_layers):
        if self_hsic[i] > 0:
            matrix[i, i] = 1.0
        for j in range(i + 1, n_layers):
            # pairs of draws computed: (0, 0) and (1, 1), or an exact view with either sketch
            cross = float(
                np.mean(
                    [
                        hsic[(i, a.draw, j, b.draw)]
                        for a in views[i]
                        for b in views[j]
                        if (i, a.draw, j, b.draw) in hsic
                    ]
                )
            )
            if self_hsic[i] > 0 and self_hsic[j] > 0:
                matrix[i, j] = matrix[j, i] = cross / math.sqrt(self_hsic[i] * self_hsic[j])
    for i in np.flatnonzero(~(self_hsic > 0)):
        log.warning(
            "CKA undefined for model %r, layer %r: it does not vary across stimuli "
            "(HSIC with itself %.3g)",
            layers[i].model,
            layers[i].layer,
            self_hsic[i],
        )
    seconds = time.perf_counter() - started
    cost = {
        "seconds": round(seconds, 3),
        "passes": passes,
        "groups": len(groups),
        "gflop": round(2 * macs / 1e9, 3),
        "bytes_read_float64": int(bytes_read),
        "accumulator_bytes": int(accumulator_bytes),
        "exact_gflop_estimate": round(
            2.0 * n * sum(lay.feature_dim for lay in layers) ** 2 / 2 / 1e9, 3
        ),
        "method": options.method,
        "sketch_dim": options.sketch_dim,
    }
    log.info(
        "CKA of %d layers over %d stimuli: %.1f s, %d pass(es), %.1f GFLOP, %s",
        n_layers,
        n,
        seconds,
        passes,
        cost["gflop"],
        "exact" if all(e == "exact" for e in estimators) else "wide layers sketched",
    )
    return CKAResult(matrix, estimators, self_hsic, n, cost)
