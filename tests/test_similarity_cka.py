"""Linear CKA (unbiased HSIC): against a direct O(n²) Gram implementation, invariances,
independence, the sketch estimator's accuracy and bias, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group

from actpipe.similarity import CKAOptions, LayerInput, cka_matrix, linear_cka


def gram_cka(x: np.ndarray, y: np.ndarray) -> float:
    """CKA straight from Song et al. (2012): n x n kernels with zeroed diagonals."""

    def hsic(k: np.ndarray, l_: np.ndarray) -> float:
        n = k.shape[0]
        k, l_ = k.copy(), l_.copy()
        np.fill_diagonal(k, 0.0)
        np.fill_diagonal(l_, 0.0)
        one = np.ones(n)
        return (
            np.trace(k @ l_)
            + (one @ k @ one) * (one @ l_ @ one) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * (one @ k @ l_ @ one)
        ) / (n * (n - 3))

    k, l_ = x @ x.T, y @ y.T
    return hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_))


def inputs(layers: list[np.ndarray], model: str = "m") -> list[LayerInput]:
    return [
        LayerInput(model, f"l{i}", x.shape[1], lambda pos, x=x: x[pos].astype(np.float64))
        for i, x in enumerate(layers)
    ]


def related_layers(n: int, dims: tuple[int, ...], seed: int = 0) -> list[np.ndarray]:
    """Layers sharing a low-dimensional signal with a decaying spectrum, plus offsets."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 12)) * (np.arange(1, 13) ** -0.6)
    out = []
    for d in dims:
        z = latent @ rng.standard_normal((12, d)) + 0.7 * rng.standard_normal((n, d)) * (
            np.arange(1, d + 1) ** -0.5
        )
        out.append(np.maximum(z, 0) + 2.0)
    return out


def test_streaming_cka_equals_direct_gram_implementation():
    layers = related_layers(90, (7, 30, 64, 150))  # the last is wider than n: compressed
    direct = np.array([[gram_cka(a, b) for b in layers] for a in layers])
    for options in (
        CKAOptions(method="exact"),
        # tiny budgets: several groups and passes, blocks of 16 stimuli, no prefetch thread
        CKAOptions(method="exact", memory_bytes=16 * 160**2, block_bytes=20_000, prefetch=False),
    ):
        result = cka_matrix(inputs(layers), 90, options)
        np.testing.assert_allclose(result.matrix, direct, rtol=0, atol=1e-10)
        assert result.estimator == ["exact"] * 4
    tight = cka_matrix(
        inputs(layers), 90, CKAOptions(method="exact", memory_bytes=16 * 160**2, block_bytes=20_000)
    )
    assert tight.cost["passes"] > 1
    assert linear_cka(layers[0], layers[2]) == pytest.approx(direct[0, 2], abs=1e-10)


def test_cka_is_one_for_a_layer_with_itself_and_a_rotated_scaled_copy():
    x = related_layers(200, (40,), seed=1)[0]
    q = ortho_group.rvs(40, random_state=0)
    copy = 3.7 * x @ q + 5.0  # rotation, isotropic scaling and a shift
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, copy) == pytest.approx(1.0, abs=1e-10)
    result = cka_matrix(inputs([x, copy]), 200, CKAOptions(method="exact"))
    np.testing.assert_allclose(result.matrix, np.ones((2, 2)), atol=1e-10)
    anisotropic = x * np.linspace(0.1, 3, 40)
    assert linear_cka(x, anisotropic) < 0.99  # not invariant to anisotropic scaling


def test_cka_of_independent_random_features_is_near_zero():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((2000, 100)), rng.standard_normal((2000, 300))
    value = cka_matrix(inputs([x, y]), 2000).matrix[0, 1]
    assert abs(value) < 0.05
    assert value == pytest.approx(linear_cka(x, y), abs=1e-10)


def test_sketched_cka_is_close_to_exact_and_its_hsic_is_unbiased():
    layers = related_layers(600, (700, 500, 64), seed=3)
    exact = cka_matrix(inputs(layers), 600, CKAOptions(method="exact"))
    sketched = [
        cka_matrix(inputs(layers), 600, CKAOptions(method="sketch", sketch_dim=96, seed=s))
        for s in range(24)
    ]
    assert sketched[0].estimator == ["sketch96x2", "sketch96x2", "exact"]
    errors = np.array([r.matrix - exact.matrix for r in sketched])
    pairs = np.triu_indices(3, 1)
    # every sketched value within 0.05 of the exact one; the mean error over seeds smaller
    assert np.abs(errors[:, pairs[0], pairs[1]]).max() < 0.05
    assert np.abs(errors.mean(axis=0)).max() < 0.02
    # a sketched layer's own HSIC (from two independent sketches) is unbiased: the mean over
    # seeds is within 3 standard errors of the exact value
    own = np.array([r.self_hsic[0] for r in sketched])
    standard_error = own.std(ddof=1) / np.sqrt(len(own))
    assert abs(own.mean() - exact.self_hsic[0]) < 3 * standard_error
    assert standard_error < 0.06 * exact.self_hsic[0]


def test_auto_is_exact_when_affordable_and_sketches_wide_layers_otherwise():
    layers = related_layers(300, (600, 80), seed=4)
    cheap = cka_matrix(inputs(layers), 300, CKAOptions(sketch_dim=64, block_bytes=1000))
    assert cheap.estimator == ["exact", "exact"]
    costly = cka_matrix(
        inputs(layers), 300, CKAOptions(sketch_dim=64, exact_max_gflop=0.0, block_bytes=1000)
    )
    assert costly.estimator == ["sketch64x2", "exact"]
    assert costly.cost["gflop"] < cheap.cost["exact_gflop_estimate"]


def test_sketches_are_seeded_per_layer_and_independent_of_other_layers():
    layers = related_layers(300, (400, 300, 200), seed=5)
    opts = CKAOptions(method="sketch", sketch_dim=32, seed=7)
    a = cka_matrix(inputs(layers), 300, opts)
    b = cka_matrix(inputs(layers), 300, opts)
    np.testing.assert_array_equal(a.matrix, b.matrix)
    pair = cka_matrix(inputs(layers[:2]), 300, opts)
    np.testing.assert_allclose(pair.matrix, a.matrix[:2, :2], atol=1e-12)
    other_seed = cka_matrix(inputs(layers), 300, CKAOptions(method="sketch", sketch_dim=32, seed=8))
    assert not np.allclose(other_seed.matrix, a.matrix)


def test_constant_layer_and_too_few_stimuli():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((20, 5))
    result = cka_matrix(inputs([x, np.ones((20, 3))]), 20)
    assert np.isnan(result.matrix[0, 1]) and np.isnan(result.matrix[1, 1])
    with pytest.raises(ValueError, match="at least 4 stimuli"):
        cka_matrix(inputs([x[:3]]), 3)
    with pytest.raises(ValueError, match="memory budget"):
        cka_matrix(
            inputs([rng.standard_normal((30, 500))]),
            30,
            CKAOptions(method="exact", memory_bytes=1000),
        )
