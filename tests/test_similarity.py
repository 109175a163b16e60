"""RDMs, RSA, theory RDMs, subsamples and files, against rsatoolbox and scipy."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import rsatoolbox
from scipy.spatial.distance import pdist
from scipy.stats import kendalltau, spearmanr

from actpipe.cli import main
from actpipe.names import layer_key
from actpipe.similarity import (
    RDMCollection,
    RDMFile,
    SimilarityOptions,
    StimulusLabels,
    Theory,
    balanced_subsample,
    compare_layers,
    compare_rdms,
    compute_rdms,
    condensed_subset,
    export_rsatoolbox,
    rdm_from_patterns,
    read_comparison,
    rsa,
    square,
    theory_rdm,
)
from actpipe.similarity.rdm import condition_rdms, stimulus_rdms
from actpipe.storage.reader import load_lazy_activations
from tests.helpers.files import write_model_file

TOL = 1e-10
# rsatoolbox's calc_rdm fills an integer array with NaN internally (harmless).
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")


def rsa_dataset(patterns: np.ndarray, **descriptors: np.ndarray) -> rsatoolbox.data.Dataset:
    return rsatoolbox.data.Dataset(
        np.asarray(patterns, dtype=np.float64), obs_descriptors=descriptors
    )


def rsa_vector(rdms: rsatoolbox.rdm.RDMs) -> np.ndarray:
    return rdms.get_vectors()[0]


def exposures(x: np.ndarray) -> rsatoolbox.data.Dataset:
    """Every (stimulus, replicate) exposure of ``(n, R, P)`` as an rsatoolbox dataset."""
    n, r, p = x.shape
    return rsa_dataset(
        x.reshape(n * r, p),
        stimulus=np.repeat(np.arange(n), r),
        replicate=np.tile(np.arange(r), n),
    )


# --------------------------------------------------------------------------- random data


@pytest.mark.parametrize("tile_bytes", [1 << 30, 30_000])
def test_rdms_equal_rsatoolbox_and_scipy_on_random_data(tile_bytes):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((41, 3, 57)) * rng.uniform(0.5, 3, 57) + 4.0
    means = x.mean(axis=1)
    ours = rdm_from_patterns(
        x,
        ["correlation", "cosine", "euclidean", "sqeuclidean", "crossnobis"],
        block_bytes=tile_bytes,
    )
    by_stimulus = rsa_dataset(means, stimulus=np.arange(41))
    corr = rsatoolbox.rdm.calc_rdm(by_stimulus, method="correlation", descriptor="stimulus")
    sq = rsatoolbox.rdm.calc_rdm(by_stimulus, method="euclidean", descriptor="stimulus")
    cv = rsatoolbox.rdm.calc_rdm(
        exposures(x), method="crossnobis", descriptor="stimulus", cv_descriptor="replicate"
    )
    np.testing.assert_allclose(ours["correlation"], rsa_vector(corr), rtol=0, atol=TOL)
    np.testing.assert_allclose(ours["sqeuclidean"], rsa_vector(sq), rtol=0, atol=TOL)
    np.testing.assert_allclose(ours["crossnobis"], rsa_vector(cv), rtol=0, atol=TOL)
    np.testing.assert_allclose(ours["cosine"], pdist(means, "cosine"), rtol=0, atol=TOL)
    np.testing.assert_allclose(ours["euclidean"], pdist(means, "euclidean"), rtol=0, atol=TOL)
    assert cv.dissimilarity_measure == "crossnobis" and sq.dissimilarity_measure == (
        "squared euclidean"
    )


def test_crossnobis_is_unbiased_where_squared_euclidean_is_not():
    # Every stimulus has the same true pattern; replicates add independent noise.
    rng = np.random.default_rng(1)
    true = rng.standard_normal(200)
    x = true + rng.standard_normal((60, 4, 200))
    rdms = rdm_from_patterns(x, ["crossnobis", "sqeuclidean"])
    # Expected crossnobis is 0: its mean over 1770 pairs is within a few standard errors.
    cv = rdms["crossnobis"]
    assert abs(cv.mean()) < 4 * cv.std() / np.sqrt(len(cv) / 60)
    assert (cv < 0).mean() > 0.3  # an unbiased estimate of 0 is often negative
    # The plain squared distance of means is biased by 2 sigma² / R = 0.5 per feature.
    assert rdms["sqeuclidean"].mean() == pytest.approx(0.5, rel=0.05)


def test_crossnobis_with_five_folds_matches_rsatoolbox():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((12, 5, 30))
    ours = rdm_from_patterns(x, "crossnobis", block_bytes=10_000)["crossnobis"]
    ref = rsatoolbox.rdm.calc_rdm(
        exposures(x), method="crossnobis", descriptor="stimulus", cv_descriptor="replicate"
    )
    np.testing.assert_allclose(ours, rsa_vector(ref), rtol=0, atol=TOL)


def test_constant_pattern_gives_nan_correlation_distances():
    x = np.random.default_rng(3).standard_normal((6, 10))
    x[2] = 1.5
    rdm = square(rdm_from_patterns(x, "correlation")["correlation"])
    assert np.isnan(rdm[2, [0, 1, 3, 4, 5]]).all()
    assert np.isfinite(rdm[np.ix_([0, 1, 3], [4, 5])]).all()


def test_condensed_subset_and_square_follow_scipy():
    rng = np.random.default_rng(4)
    points = rng.standard_normal((9, 3))
    full = pdist(points)
    keep = np.array([7, 1, 4, 0])
    np.testing.assert_array_equal(condensed_subset(full, 9, keep), pdist(points[keep]))
    from scipy.spatial.distance import squareform

    np.testing.assert_array_equal(square(full), squareform(full))


# --------------------------------------------------------------------------- RSA


def test_rsa_equals_rsatoolbox_compare():
    rng = np.random.default_rng(5)
    a = rng.standard_normal(300)
    b = a + rng.standard_normal(300)
    theory = (rng.integers(0, 3, 300) > 0).astype(float)  # many ties
    for u, v in ((a, b), (a, theory)):
        ru, rv = rsatoolbox.rdm.RDMs(u[None]), rsatoolbox.rdm.RDMs(v[None])
        for ours, theirs in (
            ("spearman", "spearman"),
            ("pearson", "corr"),
            ("kendall_tau_a", "tau-a"),
        ):
            expected = rsatoolbox.rdm.compare(ru, rv, method=theirs)[0, 0]
            assert rsa(u, v, ours) == pytest.approx(expected, abs=TOL)
    assert rsa(a, b, "spearman") == pytest.approx(spearmanr(a, b).statistic, abs=TOL)
    # tau-a = tau-b when there are no ties
    assert rsa(a, b, "kendall_tau_a") == pytest.approx(kendalltau(a, b).statistic, abs=TOL)


def test_rsa_leaves_nan_entries_out_and_constant_rdms_are_nan():
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal(50), rng.standard_normal(50)
    a_nan = a.copy()
    a_nan[[3, 9]] = np.nan
    keep = np.ones(50, bool)
    keep[[3, 9]] = False
    assert rsa(a_nan, b) == pytest.approx(spearmanr(a[keep], b[keep]).statistic, abs=TOL)
    assert np.isnan(rsa(np.ones(50), b))


def test_collection_matrix_equals_pairwise_in_memory_and_through_a_scratch_file(tmp_path):
    rng = np.random.default_rng(7)
    base = rng.standard_normal(400)
    rdms = [base + s * rng.standard_normal(400) for s in (0.2, 0.5, 1.0, 3.0)]
    rdms.append(rdms[0].copy())
    rdms[-1][5] = np.nan
    rdms.append(np.full(400, 2.0))  # constant
    for memory in (1 << 30, 1000):  # the second goes to a scratch file
        for method in ("spearman", "pearson", "kendall_tau_a"):
            with RDMCollection(400, method, memory, tmp_path, capacity=len(rdms)) as coll:
                for r in rdms:
                    coll.add(r)
                matrix = coll.matrix(slice_entries=64)
                theory = coll.against(base)
            for i in range(5):
                for j in range(5):
                    expected = 1.0 if i == j else rsa(rdms[i], rdms[j], method)
                    assert matrix[i, j] == pytest.approx(expected, abs=TOL)
                assert theory[i] == pytest.approx(rsa(rdms[i], base, method), abs=TOL)
            assert np.isnan(matrix[5]).all() and np.isnan(theory[5])
    assert not list(tmp_path.iterdir())  # scratch removed
    np.testing.assert_allclose(compare_rdms(rdms[:3])[0, 1], rsa(rdms[0], rdms[1]), atol=TOL)


# --------------------------------------------------------------------------- theory


def test_theory_rdms():
    orientation = ["10", "170", "90", "10"]
    rdm = square(theory_rdm(orientation, Theory("circular", 180)))
    assert rdm[0, 1] == 20  # 170 and 10 degrees wrap at 180
    assert rdm[0, 2] == 80 and rdm[1, 2] == 80 and rdm[0, 3] == 0
    phase = square(theory_rdm(["0", "350", "180"], Theory("circular", 360)))
    assert phase[0, 1] == 10 and phase[0, 2] == 180
    cat = square(theory_rdm(["a", "b", "a", ""], Theory()))
    assert cat[0, 2] == 0 and cat[0, 1] == 1 and np.isnan(cat[3, :3]).all()
    log = square(theory_rdm(["2", "8"], Theory("log")))
    assert log[0, 1] == pytest.approx(2.0)
    assert square(theory_rdm(["1.5", "4"], Theory("numeric")))[0, 1] == 2.5
    with pytest.raises(ValueError, match="'abc' is not a number"):
        theory_rdm(["1", "abc"], Theory("numeric"), "size")
    with pytest.raises(ValueError, match="period"):
        Theory.from_config({"kind": "circular"}, "orientation")


# --------------------------------------------------------------------------- subsample


def test_subsample_is_balanced_seeded_and_keeps_small_classes_whole():
    classes = ["a"] * 500 + ["b"] * 30 + ["c"] * 300 + ["d"] * 170
    sub = balanced_subsample(len(classes), 300, seed=3, classes=classes, balanced_by="digit")
    chosen = [classes[r] for r in sub.rows]
    counts = {c: chosen.count(c) for c in "abcd"}
    assert counts == {"a": 90, "b": 30, "c": 90, "d": 90}
    assert sub.per_class == counts and len(sub.rows) == 300
    assert (np.diff(sub.rows) > 0).all()
    again = balanced_subsample(len(classes), 300, seed=3, classes=classes)
    other = balanced_subsample(len(classes), 300, seed=4, classes=classes)
    np.testing.assert_array_equal(sub.rows, again.rows)
    assert not np.array_equal(sub.rows, other.rows)
    record = sub.record()
    assert record["subsampled"] and record["n_total"] == 1000 and record["seed"] == 3
    assert balanced_subsample(50, 300).rows.tolist() == list(range(50))


# --------------------------------------------------------------------------- files


NAMES = ["conv/1:relu", "block 2", "tête.3"]  # '/', ':', space, non-ASCII


def make_set(tmp_path: Path, n: int = 40, reps: int = 2, seed: int = 0) -> tuple[Path, Path, dict]:
    """A per-model file (layer names that need keys) and a stimulus folder with labels.csv."""
    rng = np.random.default_rng(seed)
    ids = [f"s{i:03d}" for i in range(n)]
    digit = rng.integers(0, 4, n)
    orientation = (np.arange(n) % 6) * 30.0
    signal = np.eye(4)[digit] @ rng.standard_normal((4, 16))
    layers = {
        NAMES[0]: (signal[:, None, :] + 0.5 * rng.standard_normal((n, reps, 16))).astype(
            np.float32
        ),
        NAMES[1]: rng.standard_normal((n, reps, 24)).astype(np.float32),
        NAMES[2]: (
            np.c_[np.cos(np.radians(2 * orientation)), np.sin(np.radians(2 * orientation))][
                :, None, :
            ]
            + 0.1 * rng.standard_normal((n, reps, 2))
        ).astype(np.float32),
    }
    path = write_model_file(tmp_path / "acts.h5", "net", ids, layers)
    folder = tmp_path / "stimuli"
    folder.mkdir()
    with open(folder / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["stimulus_id", "digit", "orientation"])
        for sid, d, o in zip(ids, digit, orientation, strict=True):
            writer.writerow([sid, int(d), o])
    return path, folder, {"ids": ids, "layers": layers, "digit": digit, "orientation": orientation}


def test_compute_rdms_writes_every_layer_equal_to_rsatoolbox(tmp_path):
    path, folder, data = make_set(tmp_path)
    out = compute_rdms(
        path,
        tmp_path / "rdms.h5",
        stimuli=folder,
        options={"distances": ["correlation", "crossnobis", "sqeuclidean"]},
        stimulus_set="unit",
    )
    ids = data["ids"]
    with RDMFile(out) as rdms:
        assert rdms.model == "net" and rdms.layers == NAMES
        assert rdms.stimulus_ids == ids and rdms.attrs["stimulus_set"] == "unit"
        assert rdms.labels.names == ["digit", "orientation"]
        for name in NAMES:
            x = data["layers"][name].astype(np.float64)
            ds = rsa_dataset(x.mean(axis=1), stimulus=np.arange(len(ids)))
            for ours, theirs in (("correlation", "correlation"), ("sqeuclidean", "euclidean")):
                ref = rsatoolbox.rdm.calc_rdm(ds, method=theirs, descriptor="stimulus")
                np.testing.assert_allclose(
                    rdms.stimulus_rdm(name, ours), rsa_vector(ref), rtol=0, atol=TOL
                )
            ref = rsatoolbox.rdm.calc_rdm(
                exposures(x), method="crossnobis", descriptor="stimulus", cv_descriptor="replicate"
            )
            np.testing.assert_allclose(
                rdms.stimulus_rdm(name, "crossnobis"), rsa_vector(ref), rtol=0, atol=TOL
            )
            # condition RDMs: rsatoolbox averages the patterns of each label value
            for label in ("digit", "orientation"):
                values = data[label].astype(float)
                cond = rsa_dataset(x.mean(axis=1), cond=values)
                ref = rsatoolbox.rdm.calc_rdm(cond, method="correlation", descriptor="cond")
                np.testing.assert_allclose(
                    rdms.condition_rdm(label, name, "correlation"), rsa_vector(ref), atol=TOL
                )
                n, r, p = x.shape
                cv_data = rsa_dataset(
                    x.reshape(n * r, p),
                    cond=np.repeat(values, r),
                    replicate=np.tile(np.arange(r), n),
                )
                ref = rsatoolbox.rdm.calc_rdm(
                    cv_data, method="crossnobis", descriptor="cond", cv_descriptor="replicate"
                )
                np.testing.assert_allclose(
                    rdms.condition_rdm(label, name, "crossnobis"), rsa_vector(ref), atol=TOL
                )
                values_stored, counts = rdms.conditions(label)
                assert [float(v) for v in values_stored] == sorted(set(values))
                assert counts.sum() == n
    with h5py.File(out, "r") as f:  # layer names become keys; the original is an attribute
        dset = f[f"stimulus/correlation/{layer_key(NAMES[2])}"]
        assert dset.attrs["name"] == NAMES[2] and dset.dtype == np.float64
        assert json.loads(f.attrs["layers"]) == NAMES


def test_streamed_rdms_equal_in_memory_rdms(tmp_path):
    path, _, data = make_set(tmp_path, n=70, reps=3)
    distances = ["correlation", "cosine", "euclidean", "crossnobis"]
    with load_lazy_activations(path) as acts:
        view = acts["net"].layer(NAMES[1])
        rows = np.arange(3, 70, 2)
        streamed = stimulus_rdms(view, rows, distances, block_bytes=20_000)
        assert streamed.info["tiles"] >= 3
        whole = rdm_from_patterns(data["layers"][NAMES[1]][rows], distances)
        for d in distances:
            np.testing.assert_allclose(streamed.values[d], whole[d], rtol=0, atol=TOL)
        codes = np.array(data["digit"])
        small = condition_rdms(view, {"digit": (["0", "1", "2", "3"], codes)}, distances, 5000)
        big = condition_rdms(view, {"digit": (["0", "1", "2", "3"], codes)}, distances, 1 << 30)
        for d in distances:
            np.testing.assert_allclose(small["digit"].rdms[d], big["digit"].rdms[d], atol=TOL)


def test_subsample_is_recorded_and_condition_rdms_use_every_stimulus(tmp_path):
    path, folder, data = make_set(tmp_path, n=60)
    out = compute_rdms(path, tmp_path / "r.h5", stimuli=folder, options={"max_stimuli": 20})
    with RDMFile(out) as rdms:
        sub = rdms.attrs["subsample"]
        assert sub["subsampled"] and sub["n"] == 20 and sub["n_total"] == 60
        assert sub["balanced_by"] == "digit" and sum(sub["per_class"].values()) == 20
        assert max(sub["per_class"].values()) - min(sub["per_class"].values()) <= 1
        ids = rdms.stimulus_ids
        rows = [data["ids"].index(s) for s in ids]
        x = data["layers"][NAMES[0]].astype(np.float64).mean(axis=1)
        np.testing.assert_allclose(
            rdms.stimulus_rdm(NAMES[0]), pdist(x[rows], "correlation"), atol=TOL
        )
        assert rdms.conditions("digit")[1].sum() == 60  # all stimuli, not the subsample
    again = compute_rdms(path, tmp_path / "r2.h5", stimuli=folder, options={"max_stimuli": 20})
    with RDMFile(again) as rdms2:
        assert rdms2.stimulus_ids == ids


def test_compare_layers_rsa_cka_theory_and_tsv(tmp_path):
    path, folder, data = make_set(tmp_path, n=48)
    (tmp_path / "b").mkdir()
    other, _, _ = make_set(tmp_path / "b", n=48, seed=1)
    opts = {
        "distances": ["correlation"],
        "comparisons": ["spearman", "kendall_tau_a", "cka"],
        "theory": {"orientation": {"kind": "circular", "period": 180}},
    }
    ra = compute_rdms(path, tmp_path / "a.h5", stimuli=folder, options=opts)
    rb = compute_rdms(other, tmp_path / "b.h5", stimuli=folder, options=opts)
    out = compare_layers(
        [ra, rb],
        [path, other],
        tmp_path / "compare.h5",
        tmp_path / "compare.tsv",
        options=opts,
        stimulus_set="unit",
        model_names=["net_a", "net_b"],
    )
    stored = read_comparison(tmp_path / "compare.h5")
    assert stored.layers.model == ["net_a"] * 3 + ["net_b"] * 3
    assert stored.layers.layer == NAMES * 2 and stored.layers.depth[:3] == [0.0, 0.5, 1.0]
    np.testing.assert_array_equal(stored.cka, out.cka)
    with RDMFile(ra) as a, RDMFile(rb) as b:
        rdms = [a.stimulus_rdm(n) for n in NAMES] + [b.stimulus_rdm(n) for n in NAMES]
        labels = a.labels
    for i in range(6):
        for j in range(6):
            if i != j:
                assert stored.rsa["correlation"]["spearman"][i, j] == pytest.approx(
                    rsa(rdms[i], rdms[j]), abs=TOL
                )
    theory = theory_rdm(labels.columns["orientation"], Theory("circular", 180))
    for i in range(6):
        assert stored.theory["orientation"]["correlation"]["kendall_tau_a"][i] == pytest.approx(
            rsa(rdms[i], theory, "kendall_tau_a"), abs=TOL
        )
    digit = stored.theory["digit"]["correlation"]["spearman"]
    assert digit[0] > 0.3 and abs(digit[1]) < 0.2  # the digit-driven layer matches its theory
    assert stored.theories["orientation"]["kind"] == "circular"
    with open(tmp_path / "compare.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    cka_rows = [r for r in rows if r["measure"] == "cka"]
    assert len(cka_rows) == 15 and {r["layer_a"] for r in cka_rows} >= {NAMES[0], NAMES[2]}
    row = next(
        r
        for r in cka_rows
        if r["layer_a"] == NAMES[0] and r["model_b"] == "net_b" and r["layer_b"] == NAMES[1]
    )
    assert float(row["value"]) == pytest.approx(stored.cka[0, 4], abs=1e-12)
    theory_rows = [r for r in rows if r["kind"] == "theory"]
    assert {r["label"] for r in theory_rows} == {"digit", "orientation"}


def test_rsatoolbox_loads_the_export(tmp_path):
    path, folder, _ = make_set(tmp_path)
    rdm_path = compute_rdms(
        path, tmp_path / "rdms.h5", stimuli=folder, options={"distances": ["sqeuclidean"]}
    )
    out = export_rsatoolbox(rdm_path, tmp_path / "rsa.h5")
    loaded = rsatoolbox.rdm.load_rdm(str(out))
    with RDMFile(rdm_path) as rdms:
        np.testing.assert_array_equal(
            loaded.dissimilarities, np.stack([rdms.stimulus_rdm(n) for n in NAMES])
        )
        assert loaded.pattern_descriptors["stimulus_id"] == rdms.stimulus_ids
    assert loaded.dissimilarity_measure == "squared euclidean"
    # rsatoolbox reads strings as ASCII: a non-ASCII name is written as its layer key
    assert list(loaded.rdm_descriptors["layer"]) == [
        n if n.isascii() else layer_key(n) for n in NAMES
    ]
    assert loaded.n_cond == 40
    cond = rsatoolbox.rdm.load_rdm(
        str(export_rsatoolbox(rdm_path, tmp_path / "c.h5", label="digit"))
    )
    assert cond.n_cond == 4 and list(cond.pattern_descriptors["value"]) == ["0", "1", "2", "3"]


def test_errors_name_file_model_layer_and_what_to_do(tmp_path):
    path, folder, _ = make_set(tmp_path)
    one = write_model_file(
        tmp_path / "one.h5",
        "net",
        [f"s{i}" for i in range(5)],
        {"l": np.zeros((5, 1, 3), np.float32)},
    )
    with pytest.raises(ValueError, match=r"one\.h5.*crossnobis.*n_replicates >= 2"):
        compute_rdms(one, tmp_path / "x.h5", options={"distances": ["crossnobis"]})
    with pytest.raises(KeyError, match=r"acts\.h5.*model 'net'.*no layer 'conv'.*closest"):
        compute_rdms(path, tmp_path / "x.h5", layers=["conv"])
    with pytest.raises(ValueError, match="balance_by.*no label 'colour'"):
        compute_rdms(path, tmp_path / "x.h5", stimuli=folder, options={"balance_by": "colour"})
    with pytest.raises(ValueError, match="unknown distance 'manhattan'"):
        SimilarityOptions.from_config({"distances": ["manhattan"]})
    assert not (tmp_path / "x.h5").exists()


def test_labels_missing_rows_are_an_error(tmp_path):
    folder = tmp_path / "stim"
    folder.mkdir()
    (folder / "labels.csv").write_text("stimulus_id,digit\na,1\n")
    with pytest.raises(ValueError, match=r"no row for 1 stimulus id.*'b'"):
        StimulusLabels.read(folder, ["a", "b"])


# --------------------------------------------------------------------------- command line


def test_cli_rdm_compare_and_export(tmp_path, capsys):
    path, folder, _ = make_set(tmp_path)
    assert (
        main(
            [
                "rdm",
                str(path),
                "--layer",
                NAMES[0],
                "--labels",
                str(folder),
                "--out",
                str(tmp_path / "r.h5"),
            ]
        )
        == 0
    )
    shown = capsys.readouterr().out
    assert NAMES[0] in shown and "rho digit" in shown and "40 of 40 stimuli" in shown
    assert (
        main(["export", str(tmp_path / "r.h5"), "--layout", "rsatoolbox", str(tmp_path / "rsa.h5")])
        == 0
    )
    assert rsatoolbox.rdm.load_rdm(str(tmp_path / "rsa.h5")).n_rdm == 1
    capsys.readouterr()
    assert (
        main(
            [
                "compare",
                str(path),
                str(path),
                "--layer-a",
                NAMES[0],
                "--tsv",
                str(tmp_path / "c.tsv"),
            ]
        )
        == 0
    )
    shown = capsys.readouterr().out
    assert "linear CKA" in shown and "A:net" in shown and "B:net" in shown
    lines = (tmp_path / "c.tsv").read_text().splitlines()
    assert lines[0].split("\t")[:3] == ["kind", "model_a", "layer_a"]
    assert main(["rdm", str(path), "--layer", "nope"]) == 1
    assert "no layer 'nope'" in capsys.readouterr().err


# --------------------------------------------------------------------------- report and site


@pytest.fixture
def compared(tmp_path):
    path, folder, data = make_set(tmp_path, n=30)
    opts = {"distances": ["correlation"], "comparisons": ["spearman", "cka"]}
    rdm_path = compute_rdms(path, tmp_path / "rdms.h5", stimuli=folder, options=opts)
    compare_layers([rdm_path], [path], tmp_path / "compare.h5", options=opts, stimulus_set="unit")
    return tmp_path / "compare.h5", rdm_path, data


def test_page_data_is_json_ready_and_copies_the_files(compared):
    from actpipe.similarity import page_data

    compare_path, rdm_path, data = compared
    page = page_data(compare_path, [rdm_path], max_heatmap=12)
    json.dumps(page, allow_nan=False)  # valid JSON: NaN became None
    stored = read_comparison(compare_path)
    assert page["stimulus_set"] == "unit" and page["order_by"] == "digit"
    assert [row["layer"] for row in page["layers"]] == NAMES
    assert page["layers"][2]["depth"] == 1.0
    np.testing.assert_allclose(np.array(page["cka"]["matrix"], dtype=float), stored.cka)
    assert page["rsa"]["method"] == "spearman"
    heat = page["rdms"][0]
    assert len(heat["stimulus_ids"]) == 12 and np.array(heat["matrix"]).shape == (12, 12)
    assert heat["order_values"] == sorted(heat["order_values"], key=float)  # ordered by label
    with RDMFile(rdm_path) as rdms:
        full = square(rdms.stimulus_rdm(NAMES[0]))
        pos = [rdms.stimulus_ids.index(s) for s in heat["stimulus_ids"]]
    np.testing.assert_allclose(np.array(heat["matrix"]), full[np.ix_(pos, pos)], atol=1e-15)
    series = next(t for t in page["theory"] if t["label"] == "digit")["series"][0]
    assert series["layers"] == NAMES and series["depth"] == [0.0, 0.5, 1.0]
    np.testing.assert_allclose(series["values"], stored.theory["digit"]["correlation"]["spearman"])
    cond = [c for c in page["condition_rdms"] if c["label"] == "digit"]
    assert len(cond) == 3 and np.array(cond[0]["matrix"]).shape == (4, 4)


def test_report_section_copies_the_best_layers(compared):
    from actpipe.similarity import render_section
    from actpipe.similarity.report import best_theory_layers

    compare_path, _, _ = compared
    text = "\n".join(render_section([compare_path]))
    assert text.startswith("## Representational similarity")
    stored = read_comparison(compare_path)
    layer, value = best_theory_layers(stored, "digit")["net"]
    assert f"| digit (same 0 / different 1) | net | `{layer}` | {value:.3f} |" in text
    assert "CKA on 30 stimuli (exact" in text
