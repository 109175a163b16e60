"""The similarity page's data against ``compare.h5`` and ``rdms.h5`` read here with plain h5py
and scipy: layer table, CKA and RSA matrices, theory correlations, best layers, the heatmaps'
stimuli (a balanced subsample ordered by each label) and their RDMs, condition RDMs, the
overview section, determinism, and a tree without similarity outputs."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
import shutil
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy.spatial.distance import squareform

import actpipe.site.pages.similarity as similarity_page
from actpipe.names import layer_key
from actpipe.similarity import RDMFile, compare_layers, compute_rdms, condensed_subset, page_data
from actpipe.site import build_site
from actpipe.site.synthetic import synthetic_results
from actpipe.site.thumbnails import read_manifest
from tests.helpers.files import write_model_file

SET = "odd+set"
MODELS = ("model00", "model01")
LAYERS = ["/conv/conv.6/Relu_output_0", "block 2: ü", "head.fc"]  # '/', ':', space, non-ASCII
XSS = "<script>alert(1)</script>"
CLASSES = [XSS, "plain & co", "third"]
N = 60
SHOWN = 40  # heatmap stimuli in these tests (the page's MAX_HEATMAP, lowered)
OPTIONS = {
    "distances": ["correlation", "crossnobis"],
    "comparisons": ["spearman", "kendall_tau_a", "cka"],
    "theory": {"size": "numeric"},
}
LABELS = ["label", "size", "tone/ü", "serial"]  # serial: 60 values, more than SHOWN
OVERVIEW_LINK = re.compile(r"^#/[A-Za-z0-9_.~/?=&-]*$")  # what overview.js accepts


def read_data(site: Path, key: str):
    """The value a data file hands to ``actpipeData(key, value)``."""
    text = (site / "data" / f"{key}.js").read_text(encoding="ascii")
    head = f'actpipeData("{key}",'
    assert text.startswith(head) and text.endswith(");\n"), key
    return json.loads(text[len(head) : -3])


def strings(dset: h5py.Dataset) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in dset[()]]


def as_array(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def write_similarity(root: Path, work: Path) -> None:
    """Activations of two models on the synthetic set, their RDMs and the set's comparison."""
    manifest = read_manifest(root / "thumbnails" / SET)
    ids, classes = manifest["ids"], manifest["labels"]["label"]
    folder = work / "stimuli"
    folder.mkdir()
    with open(folder / "labels.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["stimulus_id", *LABELS])
        for i, sid in enumerate(ids):
            writer.writerow([sid, classes[i], i % 7 * 1.5, "dark" if i % 2 else "light", i])
    rng = np.random.default_rng(3)
    code = np.array([CLASSES.index(c) for c in classes])
    rdm_files, activation_files = [], []
    for m, model in enumerate(MODELS):
        centres = rng.standard_normal((3, 8))
        layers = {
            name: (
                (0.4 * (j + 1) + 0.2 * m) * (np.eye(3)[code] @ centres)[:, None, :]
                + rng.standard_normal((N, 2, 8))
            ).astype(np.float32)
            for j, name in enumerate(LAYERS)
        }
        acts = write_model_file(work / f"{model}.h5", model, ids, layers)
        out = root / "similarity" / SET / model / "rdms.h5"
        out.parent.mkdir(parents=True)
        compute_rdms(acts, out, stimuli=folder, options=OPTIONS, stimulus_set=SET)
        rdm_files.append(out)
        activation_files.append(acts)
    compare = root / "similarity" / SET / "compare.h5"
    compare_layers(rdm_files, activation_files, compare, options=OPTIONS, stimulus_set=SET)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("similarity-site")
    root = work / "results"
    synthetic_results(
        root, n_stimuli=N, n_models=2, layer_names=LAYERS, labels=CLASSES, stimulus_set=SET
    )
    write_similarity(root, work)
    return root


@pytest.fixture(scope="module")
def site(tree: Path, tmp_path_factory) -> Path:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(similarity_page, "MAX_HEATMAP", SHOWN)
        return build_site(tree, tmp_path_factory.mktemp("built") / "site").path


@pytest.fixture(scope="module")
def summary(site: Path) -> dict:
    return read_data(site, f"similarity/{layer_key(SET)}/summary")


def compare_file(tree: Path) -> Path:
    return tree / "similarity" / SET / "compare.h5"


# ----------------------------------------------------------------------------- compare.h5


def test_summary_layers_and_matrices_are_those_of_compare_h5(tree, site, summary):
    with h5py.File(compare_file(tree), "r") as f:
        models = strings(f["layers/model"])
        layers = strings(f["layers/layer"])
        index = f["layers/index"][()]
        depth = f["layers/depth"][()]
        cka = f["cka/matrix"][()]
        rsa = {(d, m): f[f"rsa/{d}/{m}"][()] for d in f["rsa"] for m in f[f"rsa/{d}"]}
    assert [(row["model"], row["layer"]) for row in summary["layers"]] == list(
        zip(models, layers, strict=True)
    )
    assert [row["key"] for row in summary["layers"]] == [layer_key(x) for x in layers]
    assert [row["index"] for row in summary["layers"]] == index.tolist()
    assert [row["depth"] for row in summary["layers"]] == depth.tolist()
    assert [m["name"] for m in summary["models"]] == list(MODELS)
    assert summary["models"][1]["rows"] == [3, 4, 5]
    shown = read_data(site, summary["matrices"]["cka"])["matrix"]
    np.testing.assert_array_equal(np.array([as_array(r) for r in shown]), cka)  # exact copies
    assert set(rsa) == {(d, m) for d in OPTIONS["distances"] for m in ("spearman", "kendall_tau_a")}
    for (d, m), matrix in rsa.items():
        shown = read_data(site, summary["matrices"]["rsa"][d][m])["matrix"]
        np.testing.assert_array_equal(np.array([as_array(r) for r in shown]), matrix)
    assert (summary["distance"], summary["method"]) == ("correlation", "spearman")
    assert summary["nRsa"] == N and summary["nCka"] == N


def test_theory_values_and_best_layers_are_those_of_compare_h5(tree, summary):
    with h5py.File(compare_file(tree), "r") as f:
        models = strings(f["layers/model"])
        theory = {}
        for key in f["theory"]:
            group = f[f"theory/{key}"]
            label = str(group.attrs["label"])
            theory[label] = {(d, m): group[f"{d}/{m}"][()] for d in group for m in group[d]}
    assert set(theory) == {"label", "size", "tone/ü", "serial"}
    assert [entry["name"] for entry in summary["labels"]] == LABELS  # labels.csv's order
    sizes = next(entry for entry in summary["labels"] if entry["name"] == "size")
    assert sizes["theory"]["kind"] == "numeric"
    for label, by in theory.items():
        for (d, m), values in by.items():
            shown = summary["theory"][layer_key(label)][d][m]
            np.testing.assert_array_equal(as_array(shown), values)
            best = summary["best"][layer_key(label)][d][m]
            expected = []
            for k, model in enumerate(MODELS):
                rows = [i for i, name in enumerate(models) if name == model]
                if np.isnan(values[rows]).all():
                    continue  # e.g. a theory RDM with one value for every pair
                row = rows[int(np.nanargmax(values[rows]))]
                expected.append({"m": k, "row": row, "value": float(values[row])})
            assert best == expected


def test_overview_lists_each_models_best_layer_per_label(site, summary):
    info = next(p for p in read_data(site, "index")["pages"] if p["name"] == "similarity")["info"]
    assert info["sets"] == [
        {"name": SET, "key": layer_key(SET), "models": list(MODELS), "layers": 6}
    ]
    (section,) = info["overview"]
    rows = section["rows"]
    assert len(rows) == (len(LABELS) - 1) * len(MODELS)  # serial: one value per stimulus
    for label in summary["labels"]:
        best = summary["best"][label["key"]]["correlation"]["spearman"]
        mine = [r for r in rows if r[1].split(" (")[0] == label["name"]]
        assert [r[5] for r in mine] == sorted((b["value"] for b in best), reverse=True)
        for row in mine:
            entry = next(b for b in best if summary["models"][b["m"]]["name"] == row[2])
            layer = summary["layers"][entry["row"]]
            assert row[3]["text"] == layer["layer"]
            assert OVERVIEW_LINK.match(row[3]["href"]), row[3]["href"]
            assert f"layer={layer_key(layer['layer'])}" in row[3]["href"]
            assert row[4] == f"{layer['index'] + 1} of 3"
    assert any(r[1].startswith("label (same 0 / different 1)") for r in rows)


# ----------------------------------------------------------------------------- rdms.h5


def test_heatmap_stimuli_are_a_balanced_subsample_ordered_by_each_label(tree, site, summary):
    for entry in summary["models"]:
        with h5py.File(tree / "similarity" / SET / entry["name"] / "rdms.h5", "r") as f:
            ids = strings(f["stimuli/stimulus_ids"])
            labels = {
                str(dset.attrs["label"]): strings(dset) for dset in f["stimuli/labels"].values()
            }
        shown = read_data(site, f"similarity/{layer_key(SET)}/stimuli/{entry['name']}")
        assert len(shown["ids"]) == SHOWN and len(set(shown["ids"])) == SHOWN
        positions = [ids.index(s) for s in shown["ids"]]
        assert positions == sorted(positions)  # in the RDM's order
        counts = Counter(labels["label"][p] for p in positions)
        assert sum(counts.values()) == SHOWN and max(counts.values()) - min(counts.values()) <= 1
        assert entry["rdm"]["shown"]["subsampled"] and entry["rdm"]["shown"]["n_total"] == N
        assert not entry["rdm"]["computed"]["subsampled"]
        for name, values in labels.items():
            key = layer_key(name)
            assert shown["labels"][key] == [values[p] for p in positions]
            order = shown["order"][key]
            assert sorted(order) == list(range(SHOWN))
            numeric = name in ("size", "serial")
            assert shown["numeric"][key] == numeric
            sort_key = [
                (float(shown["labels"][key][i]) if numeric else shown["labels"][key][i])
                for i in order
            ]
            assert sort_key == sorted(sort_key)
            ties = [
                [shown["ids"][i] for i in order if shown["labels"][key][i] == v]
                for v in set(values)
            ]
            assert all(group == sorted(group) for group in ties)  # then by id


def test_heatmap_rdms_are_the_stored_rdms_of_the_shown_stimuli(tree, site, summary):
    base = f"similarity/{layer_key(SET)}"
    checked = 0
    for entry in summary["models"]:
        model = entry["name"]
        shown = read_data(site, f"{base}/stimuli/{model}")
        with h5py.File(tree / "similarity" / SET / model / "rdms.h5", "r") as f:
            ids = strings(f["stimuli/stimulus_ids"])
            positions = [ids.index(s) for s in shown["ids"]]
            for distance in OPTIONS["distances"]:
                for layer in LAYERS:
                    full = squareform(f[f"stimulus/{distance}/{layer_key(layer)}"][()])
                    expected = squareform(full[np.ix_(positions, positions)], checks=False)
                    key = f"{base}/rdm/{model}/{distance}/{layer_key(layer)}"
                    values = as_array(read_data(site, key)["rdm"])
                    np.testing.assert_allclose(values, expected, rtol=6e-5, atol=1e-12)
                    checked += 1
    assert checked == len(MODELS) * 2 * len(LAYERS)


def test_condition_rdms_are_copied_and_large_labels_are_not_drawn(tree, site, summary):
    base = f"similarity/{layer_key(SET)}"
    for entry in summary["models"]:
        model = entry["name"]
        conditions = read_data(site, f"{base}/stimuli/{model}")["conditions"]
        drawn = {c["key"]: c["drawn"] for c in entry["rdm"]["conditions"]}
        assert drawn == {
            layer_key("label"): True,
            layer_key("size"): True,
            layer_key("tone/ü"): True,
            "serial": False,  # 60 values > SHOWN
        }
        with h5py.File(tree / "similarity" / SET / model / "rdms.h5", "r") as f:
            for label in LABELS:
                key = layer_key(label)
                group = f[f"labels/{key}"]
                assert conditions[key]["values"] == strings(group["values"])
                assert conditions[key]["counts"] == group["counts"][()].tolist()
                for distance in OPTIONS["distances"]:
                    for layer in LAYERS:
                        path = Path(site, "data", base, "cond", model, key, distance)
                        file = path / f"{layer_key(layer)}.js"
                        if not drawn[key]:
                            assert not file.exists()
                            continue
                        stored = group[f"{distance}/{layer_key(layer)}"][()]
                        values = read_data(
                            site, f"{base}/cond/{model}/{key}/{distance}/{layer_key(layer)}"
                        )["rdm"]
                        np.testing.assert_allclose(as_array(values), stored, rtol=6e-5)
    assert XSS in read_data(site, f"{base}/stimuli/model00")["conditions"]["label"]["values"]


def test_page_data_orders_the_same_rdms_as_the_site(tree, site):
    rdm_files = [tree / "similarity" / SET / m / "rdms.h5" for m in MODELS]
    page = page_data(compare_file(tree), rdm_files, order_by="label", max_heatmap=SHOWN)
    shown = read_data(site, f"similarity/{layer_key(SET)}/stimuli/model00")
    order = shown["order"]["label"]
    first = page["rdms"][0]
    assert first["stimulus_ids"] == [shown["ids"][i] for i in order]
    assert first["order_values"] == sorted(first["order_values"])
    key = f"similarity/{layer_key(SET)}/rdm/model00/correlation/{layer_key(LAYERS[0])}"
    condensed = as_array(read_data(site, key)["rdm"])
    square = squareform(condensed)[np.ix_(order, order)]
    np.testing.assert_allclose(np.array(first["matrix"], dtype=float), square, rtol=6e-5)
    assert sorted(b["label"] for b in page["best"]) == sorted(LABELS)


def test_stimulus_rdm_subset_reads_the_rows_of_the_full_rdm(tree):
    with RDMFile(tree / "similarity" / SET / "model00" / "rdms.h5") as rdms:
        full = rdms.stimulus_rdm(LAYERS[1], "crossnobis")
        rng = np.random.default_rng(0)
        for size in (2, 7, 31, N):
            rows = np.sort(rng.choice(N, size=size, replace=False))
            np.testing.assert_array_equal(
                rdms.stimulus_rdm_subset(LAYERS[1], "crossnobis", rows),
                condensed_subset(full, N, rows),
            )
        with pytest.raises(ValueError, match="rows must increase"):
            rdms.stimulus_rdm_subset(LAYERS[1], "crossnobis", [3, 1])


# ----------------------------------------------------------------------------- the build


def digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_similarity_data_are_deterministic_and_stay_small(tree, site, tmp_path):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(similarity_page, "MAX_HEATMAP", SHOWN)
        again = build_site(tree, tmp_path / "again").path
    assert digest(site / "data" / "similarity") == digest(again / "data" / "similarity")
    index = (site / "data" / "index.js").stat().st_size
    assert index < 20_000  # the first page's data: the overview rows, no matrix
    summary = (site / "data" / "similarity" / layer_key(SET) / "summary.js").stat().st_size
    assert summary < 20_000


def test_a_missing_rdm_file_leaves_that_model_without_heatmaps(tree, tmp_path, caplog):
    root = tmp_path / "results"
    shutil.copytree(tree, root)
    missing = root / "similarity" / SET / "model01" / "rdms.h5"
    missing.unlink()
    with caplog.at_level(logging.WARNING, logger="actpipe.site.pages.similarity"):
        site = build_site(root).path
    assert f"{missing}: missing" in caplog.text
    summary = read_data(site, f"similarity/{layer_key(SET)}/summary")
    assert summary["models"][0]["rdm"] is not None and summary["models"][1]["rdm"] is None
    assert summary["matrices"]["cka"]  # the comparison is still shown


def test_no_similarity_page_without_compare_h5(tmp_path):
    root = tmp_path / "results"
    synthetic_results(root, n_stimuli=10, n_models=1)
    (root / "similarity" / "synthetic" / "model00").mkdir(parents=True)  # nothing finished
    built = build_site(root)
    assert "similarity" not in built.pages
    assert not (built.path / "data" / "similarity").exists()
