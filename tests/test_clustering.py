"""Clustering methods against scikit-learn and hand-worked examples; streaming; bad input."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from sklearn.cluster import AgglomerativeClustering, KMeans, SpectralClustering
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.metrics import (
    adjusted_rand_score,
    davies_bouldin_score,
    normalized_mutual_info_score,
    silhouette_score,
)

from actpipe.clustering import (
    ArrayRows,
    ClusteringError,
    cluster_layer,
    label_scores,
    layer_quality,
    read_layer_clusters,
    resolve_parameter_set,
)
from actpipe.clustering.methods import LeadersMethod, find_threshold, leader_pass
from actpipe.clustering.quality import purity
from tests.helpers.clustering import blobs, write_activations


@pytest.fixture(scope="module")
def blob_file(tmp_path_factory):
    """Two replicates of 4 blobs in 8 dims (replicate 1 = replicate 0 + small noise)."""
    X, y = blobs(n=300, centers=4, dim=8)
    rng = np.random.default_rng(1)
    A = np.stack([X, X + rng.normal(0, 0.05, X.shape)], axis=1)
    path = write_activations(
        tmp_path_factory.mktemp("act") / "m.h5", "m", {"l1": A, "l2": A[:, :, :5]}
    )
    return path, A, y


def run(path, params, out, layer="l1", **kw):
    attrs = cluster_layer(path, "m", layer, params, out, "pset", **kw)
    return read_layer_clusters(out), attrs


def replicate_mean(A):
    return A.astype(np.float32).astype(np.float64).mean(axis=1)


# ------------------------------------------------------------------ methods vs scikit-learn


def test_kmeans_equals_sklearn_on_replicate_means(blob_file, tmp_path):
    path, A, _ = blob_file
    got, attrs = run(path, {"method": "kmeans", "k": 4, "n_init": 3, "seed": 5}, tmp_path / "c.h5")
    ref = KMeans(n_clusters=4, n_init=3, random_state=5).fit(replicate_mean(A))
    np.testing.assert_array_equal(got["labels"], ref.labels_)
    np.testing.assert_allclose(got["centroids"], ref.cluster_centers_, rtol=1e-10)
    assert attrs["quality"]["inertia"] == pytest.approx(ref.inertia_, rel=1e-9)


@pytest.mark.parametrize("linkage", ["ward", "average", "complete"])
def test_agglomerative_equals_sklearn(blob_file, tmp_path, linkage):
    path, A, _ = blob_file
    got, _ = run(path, {"method": "agglomerative", "k": 4, "linkage": linkage}, tmp_path / "c.h5")
    X = replicate_mean(A)
    ref = AgglomerativeClustering(n_clusters=4, linkage=linkage).fit_predict(X)
    np.testing.assert_array_equal(got["labels"], ref)
    means = np.stack([X[ref == c].mean(axis=0) for c in range(4)])
    np.testing.assert_allclose(got["centroids"], means, rtol=1e-10)


def test_spectral_after_svd_equals_sklearn(blob_file, tmp_path):
    path, A, _ = blob_file
    params = {
        "method": "spectral",
        "k": 4,
        "reduce": "svd",
        "n_components": 3,
        "seed": 2,
        "gamma": 0.1,
    }
    got, attrs = run(path, params, tmp_path / "c.h5")
    Z = TruncatedSVD(n_components=3, random_state=2).fit_transform(replicate_mean(A))
    ref = SpectralClustering(n_clusters=4, gamma=0.1, random_state=2).fit_predict(Z)
    np.testing.assert_array_equal(got["labels"], ref)
    assert attrs["features"]["dim"] == 3 and attrs["features"]["reducer"] == "TruncatedSVD"


def test_spectral_on_activations_times_gradients(blob_file, tmp_path):
    path, A, _ = blob_file
    G = np.random.default_rng(3).uniform(0.5, 1.5, A.shape).astype(np.float32)
    grads = write_activations(tmp_path / "g.h5", "m", {"l1": G, "l2": G[:, :, :5]})
    params = {"method": "spectral", "k": 4, "input": "activations_x_gradients", "gamma": 0.05}
    got, attrs = run(path, params, tmp_path / "c.h5", gradients=grads)
    P = (A.astype(np.float32).astype(np.float64) * G.astype(np.float64)).mean(axis=1)
    ref = SpectralClustering(n_clusters=4, gamma=0.05, random_state=0).fit_predict(P)
    np.testing.assert_array_equal(got["labels"], ref)
    assert attrs["gradients"] == str(grads)
    with pytest.raises(ClusteringError, match="gradient file"):
        run(path, params, tmp_path / "d.h5", gradients=tmp_path / "missing.h5")


def test_standardize_and_pca_equal_sklearn_pipeline(blob_file, tmp_path):
    path, A, _ = blob_file
    params = {
        "method": "kmeans",
        "k": 4,
        "standardize": True,
        "reduce": "pca",
        "n_components": 3,
        "n_init": 2,
    }
    got, attrs = run(path, params, tmp_path / "c.h5")
    X = replicate_mean(A)
    Z = PCA(n_components=3, random_state=0).fit_transform((X - X.mean(0)) / X.std(0))
    ref = KMeans(n_clusters=4, n_init=2, random_state=0).fit(Z)
    np.testing.assert_array_equal(got["labels"], ref.labels_)
    np.testing.assert_allclose(got["centroids"], ref.cluster_centers_, rtol=1e-8, atol=1e-10)
    assert attrs["features"]["input_dim"] == 8 and got["centroids"].shape == (4, 3)


def test_every_replicate_as_its_own_row(blob_file, tmp_path):
    path, A, _ = blob_file
    got, attrs = run(
        path, {"method": "kmeans", "k": 4, "replicates": "each", "n_init": 2}, tmp_path / "c.h5"
    )
    X = A.astype(np.float32).astype(np.float64).reshape(-1, A.shape[2])
    ref = KMeans(n_clusters=4, n_init=2, random_state=0).fit(X)
    np.testing.assert_array_equal(got["labels"], ref.labels_)
    assert got["example_ids"][:3] == ["s0000#0", "s0000#1", "s0001#0"]
    assert got["stimulus_ids"][:3] == ["s0000", "s0000", "s0001"]
    assert got["replicates"][:3].tolist() == [0, 1, 0] and attrs["n_examples"] == 600


# ------------------------------------------------------------------ leaders


def sequential_leaders(X, T):
    """The leader algorithm written out point by point (reference)."""
    leaders, labels = [], []
    for x in X:
        d = [np.linalg.norm(x - lead) for lead in leaders]
        if not d or min(d) > T:
            leaders.append(x)
            labels.append(len(leaders) - 1)
        else:
            labels.append(int(np.argmin(d)))
    return np.array(labels), np.array(leaders)


def test_leaders_hand_worked_example():
    # T = 2 on a line: 0 leads; 1 joins it; 5 leads; 1.5 joins 0 (1.5 from 0, 3.5 from 5);
    # 10 leads; 4.5 joins 5; 2.2 is 2.2 from 0 and 2.8 from 5, so it leads; 3.9 is 1.1 from 5
    # and 1.7 from 2.2, so it joins 5.
    X = np.array([[0.0], [1.0], [5.0], [1.5], [10.0], [4.5], [2.2], [3.9]])
    for block_rows in (1, 3, 100):
        labels, leaders = leader_pass(
            ArrayRows(X, block_rows=block_rows).blocks(), len(X), 1, 2.0, 100
        )
        assert labels.tolist() == [0, 0, 1, 0, 2, 1, 3, 1]
        assert leaders[:, 0].tolist() == [0.0, 5.0, 10.0, 2.2]


def test_leaders_keep_their_first_leader_and_take_the_nearest_existing():
    # 0 leads; 1.9 joins 0; 3.8 leads (3.8 > 2); 2.0 is within T of both: nearest is 3.8.
    X = np.array([[0.0], [1.9], [3.8], [2.0]])
    labels, _ = leader_pass(ArrayRows(X, block_rows=4).blocks(), 4, 1, 2.0, 10)
    assert labels.tolist() == [0, 0, 1, 1]
    # exactly T away joins (distance <= T)
    labels, _ = leader_pass(ArrayRows(np.array([[0.0], [2.0]])).blocks(), 2, 1, 2.0, 10)
    assert labels.tolist() == [0, 0]


def test_streaming_leaders_equal_the_sequential_reference(tmp_path):
    rng = np.random.default_rng(0)
    A = rng.normal(size=(400, 1, 6)).astype(np.float32)
    path = write_activations(tmp_path / "r.h5", "m", {"l1": A})
    ref_labels, ref_leaders = sequential_leaders(A[:, 0].astype(np.float64), 2.5)
    for block_mb in (0.001, 64):
        got, attrs = run(
            path,
            {"method": "leaders", "threshold": 2.5, "block_mb": block_mb},
            tmp_path / f"c{block_mb}.h5",
        )
        np.testing.assert_array_equal(got["labels"], ref_labels)
        with h5py.File(tmp_path / f"c{block_mb}.h5") as f:
            np.testing.assert_allclose(f["leaders"][()], ref_leaders)
        assert attrs["info"]["threshold_from"] == "config"
    assert len(ref_leaders) > 10


def test_leaders_threshold_by_bisection_hits_k(blob_file, tmp_path):
    path, A, y = blob_file
    got, attrs = run(path, {"method": "leaders", "k": 4}, tmp_path / "c.h5")
    info = attrs["info"]
    assert info["threshold_from"] == "bisection" and abs(info["sample_clusters"] - 4) <= 1
    assert got["centroids"].shape[0] == info["sample_clusters"]  # sample = every row here
    T, found, _ = find_threshold(replicate_mean(A), 10, 0, 1000)
    assert found == 10
    assert leader_pass(ArrayRows(replicate_mean(A)).blocks(), 300, 8, T, 1000)[1].shape[0] == 10
    assert adjusted_rand_score(y, got["labels"]) > 0.9


def test_leaders_stop_past_max_clusters():
    X = np.arange(20, dtype=float)[:, None]
    method = LeadersMethod(None, threshold=0.5, max_clusters=5)
    with pytest.raises(ClusteringError, match="more than 5 leaders"):
        method.fit(ArrayRows(X, "layer 'x'"))


# ------------------------------------------------------------------ streaming mini-batch k-means


def test_minibatch_streaming_is_independent_of_block_size_and_close_to_kmeans(tmp_path):
    X, y = blobs(n=3000, centers=6, dim=10, seed=4, std=1.5)
    path = write_activations(tmp_path / "b.h5", "m", {"l1": X[:, None, :]})
    params = {"method": "minibatch_kmeans", "k": 6, "batch_size": 256, "init_sample": 500}
    small, a_small = run(path, {**params, "block_mb": 0.002}, tmp_path / "s.h5")
    large, a_large = run(path, {**params, "block_mb": 64}, tmp_path / "l.h5")
    np.testing.assert_array_equal(small["labels"], large["labels"])
    np.testing.assert_allclose(small["centroids"], large["centroids"], rtol=1e-12)
    full = KMeans(n_clusters=6, n_init=3, random_state=0).fit(X)
    # stated tolerance: ARI >= 0.95 against full k-means, inertia within 2 %
    assert adjusted_rand_score(full.labels_, small["labels"]) >= 0.95
    assert a_small["quality"]["inertia"] <= 1.02 * full.inertia_
    assert a_small["info"]["n_batches"] == 3 * 12  # 3 epochs of ceil(3000 / 256) - 1 batches


def test_minibatch_with_incremental_pca(blob_file, tmp_path):
    path, A, y = blob_file
    got, attrs = run(
        path,
        {
            "method": "minibatch_kmeans",
            "k": 4,
            "standardize": True,
            "reduce": "pca",
            "n_components": 3,
        },
        tmp_path / "c.h5",
    )
    assert attrs["features"]["reducer"] == "IncrementalPCA"
    assert got["centroids"].shape == (4, 3)
    assert adjusted_rand_score(y, got["labels"]) > 0.95


def test_same_seed_same_numbers(blob_file, tmp_path):
    path, _, _ = blob_file
    for params in (
        {"method": "minibatch_kmeans", "k": 4, "seed": 3},
        {"method": "leaders", "k": 5, "seed": 3, "sample_size": 100},
    ):
        a, _ = run(path, params, tmp_path / "a.h5")
        b, _ = run(path, params, tmp_path / "b.h5")
        np.testing.assert_array_equal(a["labels"], b["labels"])
        np.testing.assert_array_equal(a["centroids"], b["centroids"])


# ------------------------------------------------------------------ quality


def test_streamed_quality_equals_sklearn_scores(blob_file):
    _, A, _ = blob_file
    X = replicate_mean(A)
    km = KMeans(n_clusters=4, n_init=2, random_state=0).fit(X)
    q = layer_quality(ArrayRows(X, block_rows=7), km.labels_, km.cluster_centers_)
    assert q["inertia"] == pytest.approx(km.inertia_, rel=1e-9)
    assert q["davies_bouldin"] == pytest.approx(davies_bouldin_score(X, km.labels_), rel=1e-9)
    assert q["silhouette"] == pytest.approx(silhouette_score(X, km.labels_), rel=1e-12)
    assert q["cluster_sizes"] == np.bincount(km.labels_).tolist()
    sampled = layer_quality(
        ArrayRows(X), km.labels_, km.cluster_centers_, silhouette_sample=50, seed=1
    )
    rows = np.sort(np.random.default_rng(1).choice(300, 50, replace=False))
    assert sampled["silhouette_rows"] == 50
    assert sampled["silhouette"] == pytest.approx(silhouette_score(X[rows], km.labels_[rows]))


def test_label_scores_against_sklearn_and_by_hand():
    clusters = np.array([0, 0, 1, 1, 1, 2, -1])
    truth = ["a", "a", "a", "b", "b", "b", "b"]
    s = label_scores(clusters, truth)
    assert s["ari"] == pytest.approx(adjusted_rand_score(truth[:6], clusters[:6]))
    assert s["nmi"] == pytest.approx(normalized_mutual_info_score(truth[:6], clusters[:6]))
    assert s["purity"] == pytest.approx(5 / 6)  # cluster 1 holds a, b, b
    assert purity(np.array([0, 1]), ["x", "y"]) == 1.0


# ------------------------------------------------------------------ bad input


def test_parameter_errors_name_the_set_and_key():
    with pytest.raises(ClusteringError, match="k must be at least 2"):
        resolve_parameter_set({"method": "kmeans", "k": 1}, "s1")
    with pytest.raises(ClusteringError, match="'s1'.*linkage not an option of method 'kmeans'"):
        resolve_parameter_set({"method": "kmeans", "k": 3, "linkage": "ward"}, "s1")
    with pytest.raises(ClusteringError, match="unknown method 'dbscan'"):
        resolve_parameter_set({"method": "dbscan", "k": 3})
    with pytest.raises(ClusteringError, match="needs k"):
        resolve_parameter_set({"method": "leaders"})
    with pytest.raises(ClusteringError, match="reduce='svd' needs the whole layer"):
        resolve_parameter_set({"method": "leaders", "k": 3, "reduce": "svd", "n_components": 2})
    assert resolve_parameter_set({"method": "leaders", "threshold": 1.5}).k is None


def test_k_larger_than_the_examples_and_a_single_example(tmp_path):
    path = write_activations(
        tmp_path / "a.h5",
        "m",
        {"l1": np.ones((3, 1, 4)) * [[[0, 1, 2, 3]]], "one": np.zeros((3, 1, 2))},
    )
    one = write_activations(tmp_path / "one.h5", "m", {"l1": np.ones((1, 2, 4))})
    for method in ("kmeans", "minibatch_kmeans", "agglomerative", "leaders", "spectral"):
        with pytest.raises(ClusteringError, match=r"k=5 clusters asked for but only 3 example"):
            run(path, {"method": method, "k": 5}, tmp_path / "c.h5")
        with pytest.raises(ClusteringError, match=r"only 1 example\(s\) is available"):
            run(one, {"method": method, "k": 2}, tmp_path / "c.h5")
    assert not (tmp_path / "c.h5").exists()


def test_constant_layer_is_an_error_and_constant_features_are_kept_at_zero(tmp_path):
    X, _ = blobs(n=60, centers=3, dim=4)
    X[:, 2] = 7.0  # a constant feature
    path = write_activations(
        tmp_path / "a.h5", "m", {"l1": X[:, None, :], "flat": np.ones((60, 1, 3))}
    )
    for method in ("kmeans", "minibatch_kmeans", "agglomerative", "spectral"):
        with pytest.raises(ClusteringError, match="distinct row"):
            run(path, {"method": method, "k": 3}, tmp_path / "c.h5", layer="flat")
    with pytest.raises(ClusteringError, match="identical"):
        run(path, {"method": "leaders", "k": 3}, tmp_path / "c.h5", layer="flat")
    got, attrs = run(
        path, {"method": "kmeans", "k": 3, "standardize": True, "n_init": 2}, tmp_path / "c.h5"
    )
    assert attrs["features"]["n_constant_features"] == 1
    assert np.all(got["centroids"][:, 2] == 0.0)


def test_nonfinite_rows_error_or_drop(tmp_path):
    X, _ = blobs(n=60, centers=3, dim=4)
    A = np.stack([X, X], axis=1)
    A[5, 1, 0] = np.nan
    A[9, 0, 3] = np.inf
    path = write_activations(tmp_path / "a.h5", "m", {"l1": A})
    with pytest.raises(ClusteringError, match=r"layer 'l1'.*2 of 60 row.*'s0005', 's0009'"):
        run(path, {"method": "kmeans", "k": 3}, tmp_path / "c.h5")
    got, attrs = run(
        path, {"method": "minibatch_kmeans", "k": 3, "nonfinite": "drop"}, tmp_path / "c.h5"
    )
    assert attrs["dropped"] == ["s0005", "s0009"]
    assert (
        got["labels"][[5, 9]].tolist() == [-1, -1] and (np.delete(got["labels"], [5, 9]) >= 0).all()
    )
    keep = np.delete(np.arange(60), [5, 9])
    ref = KMeans(n_clusters=3, n_init=10, random_state=0).fit(X[keep])
    assert adjusted_rand_score(ref.labels_, got["labels"][keep]) == 1.0
    each, attrs = run(
        path,
        {"method": "kmeans", "k": 3, "nonfinite": "drop", "replicates": "each"},
        tmp_path / "e.h5",
    )
    assert attrs["dropped"] == ["s0005#1", "s0009#0"] and (each["labels"] == -1).sum() == 2


def test_agglomerative_refuses_too_many_rows(blob_file, tmp_path):
    path, _, _ = blob_file
    with pytest.raises(
        ClusteringError, match="O\\(n\\^2\\).*300 rows.*minibatch_kmeans or leaders"
    ):
        run(path, {"method": "agglomerative", "k": 4, "max_rows": 100}, tmp_path / "c.h5")


def test_schema_lists_the_same_options_as_the_code():
    from pathlib import Path

    import yaml

    from actpipe.clustering.params import COMMON_OPTIONS, METHOD_OPTIONS, SCOPE_OPTIONS

    schema = yaml.safe_load(
        (Path(__file__).parents[1] / "workflow/schemas/config.schema.yaml").read_text()
    )
    pset = schema["$defs"]["parameter_set"]
    common = set(COMMON_OPTIONS) | set(SCOPE_OPTIONS)
    assert set(pset["properties"]) == common.union(*METHOD_OPTIONS.values())
    assert pset["properties"]["method"]["enum"] == list(METHOD_OPTIONS)
    for rule in pset["allOf"][1:]:
        method = rule["if"]["properties"]["method"]["const"]
        allowed = rule["then"]["propertyNames"]["enum"]
        assert set(allowed) == common | set(METHOD_OPTIONS[method])


def test_faiss_backend_same_outputs_or_a_clear_error(blob_file, tmp_path):
    path, A, y = blob_file
    params = {"method": "kmeans", "k": 4, "backend": "faiss", "n_init": 2}
    try:
        import faiss  # noqa: F401
    except ImportError:
        with pytest.raises(ClusteringError, match="pip install faiss-cpu"):
            run(path, params, tmp_path / "c.h5")
        return
    got, attrs = run(path, params, tmp_path / "c.h5")
    ref, _ = run(path, {**params, "backend": "sklearn"}, tmp_path / "r.h5")
    assert got["centroids"].shape == ref["centroids"].shape
    assert adjusted_rand_score(ref["labels"], got["labels"]) == 1.0
    assert attrs["info"]["backend"] == "faiss"
