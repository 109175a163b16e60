"""The results site without a browser: thumbnails, distances to centroids, the page data
against the results files (computed independently here), escaping, the page registry,
heatmap pages, determinism and ``actpipe serve``."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
import threading
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from actpipe.aggregation import cluster_paths, read_member_distances
from actpipe.clustering import cluster_layer, read_layer_clusters
from actpipe.names import layer_key
from actpipe.site import SiteOptions, build_site
from actpipe.site.pages import PAGES, Page, load_pages
from actpipe.site.serve import make_server, site_folder, url_of
from actpipe.site.synthetic import synthetic_results
from actpipe.site.thumbnails import ThumbnailOptions, make_thumbnails, read_manifest
from actpipe.stimuli.folder import load_stimulus_folder
from tests.helpers.clustering import write_activations

STATIC = Path(__file__).resolve().parents[1] / "src" / "actpipe" / "site" / "static"
XSS = "<script>alert(1)</script>"
ODD_LAYERS = ["/conv/conv.6/Relu_output_0", "block 2: ü", "model/dense:0", "head.fc"]


def read_data(site: Path, key: str):
    """The value a data file hands to ``actpipeData(key, value)``."""
    text = (site / "data" / f"{key}.js").read_text(encoding="ascii")
    head = f'actpipeData("{key}",'
    assert text.startswith(head) and text.endswith(");\n"), key
    return json.loads(text[len(head) : -3])


def tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ----------------------------------------------------------------------------- thumbnails


@pytest.fixture
def stimulus_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "stimuli"
    folder.mkdir()
    Image.new("RGB", (100, 50), (200, 10, 10)).save(folder / "wide.png")
    Image.new("L", (64, 64), 128).save(folder / "gray.png")
    rgba = Image.new("RGBA", (40, 80), (0, 0, 255, 0))
    rgba.paste((0, 255, 0, 255), (10, 10, 30, 70))
    rgba.save(folder / "alpha.png")
    Image.fromarray(np.full((20, 30), 40000, dtype=np.uint16)).save(folder / "deep.png")
    Image.new("RGB", (300, 300), (1, 2, 3)).save(folder / "big photo ü.jpg", quality=90)
    (folder / "broken.png").write_bytes(b"not an image at all")
    ids = sorted(p.stem for p in folder.iterdir())
    with open(folder / "labels.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["stimulus_id", "kind"])
        for i, sid in enumerate(ids):
            writer.writerow([sid, XSS if i % 2 else "plain & simple"])
    return folder


def test_thumbnails_are_small_deterministic_and_listed(stimulus_folder: Path, tmp_path: Path):
    out = tmp_path / "thumbs"
    manifest = make_thumbnails(stimulus_folder, out, ThumbnailOptions(size=32), threads=2)
    stimuli = load_stimulus_folder(stimulus_folder)
    assert manifest == read_manifest(out)
    assert manifest["ids"] == stimuli.ids
    assert manifest["labels"] == stimuli.labels
    broken = stimuli.ids.index("broken")
    assert manifest["unreadable"] == [broken]
    for i, path in enumerate(stimuli.paths):
        target = out / manifest["pattern"].format(shard=i // manifest["shard"], index=i)
        if i == broken:
            assert not target.exists()
            continue
        with Image.open(path) as original, Image.open(target) as thumb:
            assert thumb.format == "WEBP"
            assert (thumb.width, thumb.height) == (manifest["width"][i], manifest["height"][i])
            assert max(thumb.size) == min(32, max(original.size))
            assert abs(thumb.width / thumb.height - original.width / original.height) < 0.1
            if stimuli.ids[i] == "alpha":
                assert "A" in thumb.mode
    again = make_thumbnails(stimulus_folder, tmp_path / "again", ThumbnailOptions(size=32))
    assert again == manifest
    assert tree_digest(out) == tree_digest(tmp_path / "again")


def test_thumbnails_as_jpeg_and_option_errors(stimulus_folder: Path, tmp_path: Path):
    manifest = make_thumbnails(stimulus_folder, tmp_path / "j", ThumbnailOptions(format="jpeg"))
    assert manifest["pattern"].endswith(".jpg")
    with Image.open(tmp_path / "j" / "0" / "0.jpg") as thumb:
        assert thumb.format == "JPEG" and thumb.mode == "RGB"
    with pytest.raises(ValueError, match="thumbnail_format"):
        ThumbnailOptions(format="gif")
    with pytest.raises(ValueError, match="thumbnail_size"):
        ThumbnailOptions(size=2)
    with pytest.raises(FileNotFoundError, match="make_thumbnails"):
        read_manifest(tmp_path / "nowhere")


# ----------------------------------------------------------------------------- distances


def prepared(X: np.ndarray, params: dict) -> np.ndarray:
    """The clustered space, rebuilt by hand: standardise, then scikit-learn PCA."""
    if params.get("standardize"):
        std = X.std(axis=0)
        X = (X - X.mean(axis=0)) / np.where(std == 0, 1.0, std)
    if params.get("reduce") == "pca":
        from sklearn.decomposition import PCA

        X = (
            PCA(n_components=params["n_components"], random_state=params.get("seed", 0))
            .fit(X)
            .transform(X)
        )
    return X


@pytest.mark.parametrize(
    "params",
    [
        {"method": "kmeans", "k": 3},
        {"method": "kmeans", "k": 3, "standardize": True},
        {"method": "kmeans", "k": 3, "standardize": True, "reduce": "pca", "n_components": 3},
        {"method": "agglomerative", "k": 3, "reduce": "pca", "n_components": 2},
    ],
    ids=["plain", "standardised", "standardised-pca", "agglomerative-pca"],
)
def test_distances_are_measured_in_the_clustered_space(tmp_path: Path, params: dict):
    rng = np.random.default_rng(1)
    centres = rng.normal(0, 5, (3, 6))
    values = centres[rng.integers(0, 3, 40)][:, None, :] + rng.normal(0, 1, (40, 2, 6))
    values[:, :, 5] *= 100.0  # one feature on another scale: standardising matters
    layer = "block 2: ü"
    acts = write_activations(tmp_path / "acts.h5", "net", {layer: values, "plain": values[..., :4]})
    run = tmp_path / "run"
    cluster_paths(acts, "net", [layer, "plain"], dict(params), run, "pset")
    got = read_member_distances(run / "distances.h5", [layer, "plain"])
    for name in (layer, "plain"):
        clusters = read_layer_clusters(run / "layers" / f"{layer_key(name)}.h5")
        raw = values.astype(np.float32).astype(np.float64).mean(axis=1)
        X = prepared(raw if name == layer else raw[:, :4], params)
        own = clusters["centroids"][clusters["labels"]]
        expected = np.linalg.norm(X - own, axis=1)
        np.testing.assert_allclose(got[name], expected, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(clusters["distances"], got[name], rtol=1e-6)
        if params["method"] == "kmeans":
            assert clusters["attrs"]["quality"]["nearest_own"] == 1.0


def test_distances_of_dropped_rows_are_nan(tmp_path: Path):
    rng = np.random.default_rng(2)
    values = rng.normal(0, 1, (12, 1, 4))
    values[3, 0, 1] = np.nan
    acts = write_activations(tmp_path / "acts.h5", "net", {"l": values})
    params = {"method": "kmeans", "k": 2, "nonfinite": "drop"}
    cluster_paths(acts, "net", ["l"], params, tmp_path / "run", "p")
    d = read_member_distances(tmp_path / "run" / "distances.h5", ["l"])["l"]
    assert np.isnan(d[3]) and np.isfinite(np.delete(d, 3)).all()
    assert read_member_distances(tmp_path / "absent.h5", ["l"]) is None


# ----------------------------------------------------------------------------- page data


SMALL = SiteOptions(
    top_paths=3, max_paths=6, paths_chunk=7, members_chunk=5, stimuli_chunk=11, members_per_page=4
)


@pytest.fixture(scope="module")
def synthetic_site(tmp_path_factory) -> tuple[Path, Path, list[tuple[str, str, str]]]:
    root = tmp_path_factory.mktemp("synthetic") / "results"
    runs = synthetic_results(
        root,
        n_stimuli=60,
        n_models=2,
        k=4,
        n_parameter_sets=2,
        n_labels=3,
        layer_names=ODD_LAYERS,
        labels=[XSS, "b & c", "ü"],
        dropped=4,
        stimulus_set="odd+set",
        seed=3,
    )
    summary = build_site(root, options=SMALL)
    return root, summary.path, runs


def run_key(run: tuple[str, str, str]) -> str:
    return "/".join(layer_key(p) for p in run)


def test_run_data_matches_paths_metadata_and_distances(synthetic_site):
    root, site, runs = synthetic_site
    manifest = read_manifest(root / "thumbnails" / "odd+set")
    label_of = dict(zip(manifest["ids"], manifest["labels"]["label"], strict=True))
    values = read_data(site, f"sets/{layer_key('odd+set')}/labels")["values"]["label"]
    for run in runs:
        folder = root / "clusters" / run[0] / run[1] / run[2]
        paths = json.loads((folder / "paths.json").read_text())
        metadata = json.loads((folder / "metadata.json").read_text())
        ids = list(paths["paths"])
        matrix = np.asarray(list(paths["paths"].values()))
        distances = read_member_distances(folder / "distances.h5", paths["layers"])
        data = read_data(site, f"runs/{run_key(run)}/run")
        assert [layer["name"] for layer in data["layers"]] == ODD_LAYERS
        assert data["n"] == len(ids)

        # the most common complete paths, ties broken by the path itself
        counts = Counter(tuple(r) for r in matrix.tolist() if min(r) >= 0)
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        assert data["top"]["paths"] == [list(p) for p, _ in ranked[: SMALL.max_paths]]
        assert data["top"]["counts"] == [c for _, c in ranked[: SMALL.max_paths]]
        assert data["distinct"] == len(counts) and data["complete"] == sum(counts.values())

        for j, layer in enumerate(data["layers"]):
            assert layer["key"] == layer_key(ODD_LAYERS[j])
            assert layer["k"] == metadata["clusters_per_layer"][ODD_LAYERS[j]]
            column = matrix[:, j]
            assert layer["sizes"] == np.bincount(column[column >= 0], minlength=layer["k"]).tolist()
            assert layer["dropped"] == int((column < 0).sum())
            for c in range(layer["k"]):
                members = [i for i in range(len(ids)) if column[i] == c]
                if not members:
                    assert layer["majority"]["label"][c] is None
                    continue
                # the commonest label value; ties: the first value in label order
                by_code = Counter(values.index(label_of[ids[i]]) for i in members)
                top = max(by_code.values())
                assert layer["majority"]["label"][c] == min(
                    v for v, n in by_code.items() if n == top
                )
                assert layer["share"]["label"][c] == pytest.approx(top / len(members), abs=1e-4)
                # members: every member once, nearest to the centroid first
                order = sorted(members, key=lambda i: (distances[ODD_LAYERS[j]][i], i))
                files = data["chunks"]["memberFiles"][j][c]
                got = []
                for q in range(files):
                    chunk = read_data(site, f"runs/{run_key(run)}/members/{layer['key']}/{c}-{q}")
                    assert len(chunk["e"]) <= SMALL.members_chunk
                    got += chunk["e"]
                    stimuli = chunk.get("s", chunk["e"])  # absent: example i is stimulus i
                    assert [ids[e] for e in chunk["e"]] == [manifest["ids"][s] for s in stimuli]
                assert got == order

        # paths chunks: every example, its path, how many share it, its nearness ranks
        seen = []
        for q in range(-(-len(ids) // SMALL.paths_chunk)):
            chunk = read_data(site, f"runs/{run_key(run)}/paths/{q}")
            assert data["chunks"]["identity"] == ("ids" not in chunk)
            for i in range(len(chunk["p"])):
                e = len(seen)
                example = chunk["ids"][i] if "ids" in chunk else manifest["ids"][e]
                seen.append(example)
                path = chunk["p"][i]
                assert path == paths["paths"][example]
                assert chunk["pc"][i] == (counts[tuple(path)] if min(path) >= 0 else 0)
                for j, c in enumerate(path):
                    if c < 0:
                        assert chunk["rk"][i][j] == -1 and chunk["d"][i][j] is None
                        continue
                    mates = sorted(
                        (distances[ODD_LAYERS[j]][m], m)
                        for m in range(len(ids))
                        if matrix[m, j] == c
                    )
                    assert mates[chunk["rk"][i][j]][1] == e
                    # rounded to 4 significant digits of the layer's largest distance
                    largest = np.nanmax(distances[ODD_LAYERS[j]])
                    assert chunk["d"][i][j] == pytest.approx(
                        distances[ODD_LAYERS[j]][e], abs=1e-3 * largest
                    )
        assert seen == ids


def test_quality_metrics_and_best_layers_are_copied_from_the_quality_tables(synthetic_site):
    root, site, runs = synthetic_site
    index = read_data(site, "index")
    metrics = read_data(site, f"metrics/{layer_key('odd+set')}")
    best = next(p for p in index["pages"] if p["name"] == "overview")["info"]["best"]["odd+set"]
    runs = sorted(runs)  # the order build_site finds them in
    assert [(r["model"], r["pset"]) for r in metrics["runs"]] == [(m, p) for _, m, p in runs]
    expected_best = []
    for run, entry in zip(runs, metrics["runs"], strict=True):
        with open(root / "clusters" / run[0] / run[1] / run[2] / "quality.tsv") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        for metric in ("ari_label", "nmi_label", "purity_label", "silhouette"):
            assert entry["values"][metric] == pytest.approx([float(r[metric]) for r in rows])
        top = max(rows, key=lambda r: float(r["ari_label"]))
        expected_best.append((float(top["ari_label"]), run[1], run[2], top["layer"]))
    expected_best.sort(key=lambda item: -item[0])
    got = [(r["ari"], r["model"], r["pset"], r["layer"]) for r in best["label"]]
    assert got == expected_best


def test_stimulus_chunks_decode_to_the_manifest(synthetic_site):
    root, site, _ = synthetic_site
    manifest = read_manifest(root / "thumbnails" / "odd+set")
    key = layer_key("odd+set")
    labels = read_data(site, f"sets/{key}/labels")
    ids, decoded = [], []
    for q in range(-(-len(manifest["ids"]) // SMALL.stimuli_chunk)):
        chunk = read_data(site, f"sets/{key}/stimuli/{q}")
        ids += chunk["ids"]
        decoded += [labels["values"]["label"][c] for c in chunk["labels"]["label"]]
    assert ids == manifest["ids"] and decoded == manifest["labels"]["label"]
    entry = read_data(site, "index")["sets"][0]
    for i in (0, 59):
        name = entry["thumbnails"]["pattern"].format(shard=i // 1000, index=i)
        assert (site / name).read_bytes() == (
            root / "thumbnails" / "odd+set" / f"{i // 1000}/{i}.webp"
        ).read_bytes()


def test_build_is_deterministic_and_replaces_the_folder(synthetic_site, tmp_path: Path):
    root, site, _ = synthetic_site
    again = build_site(root, tmp_path / "again", options=SMALL, jobs=2)
    assert tree_digest(site) == tree_digest(again.path)
    (again.path / "stale.txt").write_text("left from before")
    build_site(root, again.path, options=SMALL)
    assert not (again.path / "stale.txt").exists()
    assert not list(tmp_path.glob(".again.*"))


def test_index_html_holds_no_data_and_escapes_the_title(tmp_path: Path):
    root = tmp_path / "results"
    synthetic_results(root, n_stimuli=20, n_models=1, labels=[XSS, "x"])
    site = build_site(root, options=SiteOptions(title="<b>Mine</b> & co")).path
    page = (site / "index.html").read_text()
    assert "&lt;b&gt;Mine&lt;/b&gt; &amp; co" in page and "<b>Mine" not in page
    assert "alert" not in page
    assert "Content-Security-Policy" in page and "connect-src 'none'" in page
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, flags=re.S)
    assert scripts and all('src="' in attrs and not body.strip() for attrs, body in scripts)
    sources = [re.search(r'src="([^"]+)"', attrs).group(1) for attrs, _ in scripts]
    assert all(s.startswith("assets/") for s in sources[:-1]) and sources[-1] == "data/index.js"
    assert all((site / s).is_file() for s in sources)
    assert "https://" not in "".join(p.read_text() for p in (site / "assets").rglob("site*"))
    # labels reach the page only as JSON strings in data files
    labels = (site / "data" / "sets" / "synthetic" / "labels.js").read_text()
    assert json.dumps(XSS) in labels


def test_static_scripts_never_write_html_from_data():
    forbidden = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function"
    )
    for path in STATIC.rglob("*.js"):
        assert not forbidden.search(path.read_text()), path


def test_plotly_is_vendored_once_from_the_package(synthetic_site):
    import plotly

    _, site, _ = synthetic_site
    bundled = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    vendored = list((site / "assets").glob("plotly-*.min.js"))
    assert len(vendored) == 1 and vendored[0].read_bytes() == bundled.read_bytes()
    digest = hashlib.sha256(bundled.read_bytes()).hexdigest()[:10]
    assert vendored[0].name.endswith(f"-{digest}.min.js")
    assert read_data(site, "index")["plotly"] == f"assets/{vendored[0].name}"


# ----------------------------------------------------------------------------- pages


def test_registry_lists_every_page_with_a_script():
    pages = load_pages()
    assert [p.name for p in pages] == list(PAGES)
    assert all(p.script().is_file() for p in pages)


def test_pages_without_their_outputs_are_left_out(synthetic_site):
    _, site, _ = synthetic_site
    names = [p["name"] for p in read_data(site, "index")["pages"]]
    assert names == ["overview", "paths", "cluster", "example", "metrics"]
    assert not (site / "assets" / "pages" / "similarity.js").exists()


def test_a_new_page_is_one_module_and_one_script(tmp_path: Path, monkeypatch):
    import actpipe.site.build as build_module

    script = tmp_path / "notes.js"
    script.write_text('actpipe.page({name: "notes", render: function (v) {}});\n')

    class Notes(Page):
        name = "notes"
        title = "Notes"

        def exists(self, tree):
            return tree.optional("notes.txt") is not None

        def build(self, context):
            text = (context.tree.root / "notes.txt").read_text()
            context.site.data("notes/text", {"text": text})
            return {"lines": len(text.splitlines())}

        def script(self):
            return script

    monkeypatch.setattr(build_module, "load_pages", lambda: [*load_pages(), Notes()])
    root = tmp_path / "results"
    synthetic_results(root, n_stimuli=10, n_models=1)
    without = build_site(root, tmp_path / "a")
    assert "notes" not in without.pages
    (root / "notes.txt").write_text("one\ntwo\n")
    site = build_site(root, tmp_path / "b").path
    entry = read_data(site, "index")["pages"][-1]
    assert entry == {"name": "notes", "title": "Notes", "nav": True, "info": {"lines": 2}}
    assert read_data(site, "notes/text") == {"text": "one\ntwo\n"}
    assert (site / "assets" / "pages" / "notes.js").read_text() == script.read_text()
    assert '<script src="assets/pages/notes.js"></script>' in (site / "index.html").read_text()


def test_a_page_module_without_page_is_refused(monkeypatch):
    import sys
    import types

    module = types.ModuleType("actpipe.site.pages.broken")
    monkeypatch.setitem(sys.modules, "actpipe.site.pages.broken", module)
    with pytest.raises(TypeError, match="must define PAGE"):
        load_pages(("overview", "broken"))


def heatmap(title: str, rows: int, cols: int) -> dict:
    return {
        "kind": "heatmap",
        "title": title,
        "stimulus_set": "synthetic",
        "group": "CKA",
        "x": {"title": "layer of b", "labels": [f"b{i}" for i in range(cols)]},
        "y": {"title": "layer of a", "labels": [f"<a{i}>" for i in range(rows)]},
        "values": [[(i + j) / 10 for j in range(cols)] for i in range(rows)],
        "zmin": 0,
        "zmax": 1,
    }


def test_heatmap_page_appears_with_heatmaps_and_skips_broken_ones(tmp_path: Path, caplog):
    root = tmp_path / "results"
    synthetic_results(root, n_stimuli=10, n_models=1)
    folder = root / "transformer" / "synthetic"
    folder.mkdir(parents=True)
    (folder / "cka.heatmap.json").write_text(json.dumps(heatmap("CKA <a> x b", 3, 2)))
    broken = heatmap("broken", 3, 2)
    broken["values"][1] = [1.0]
    (folder / "broken.heatmap.json").write_text(json.dumps(broken))
    with open(root / "transformer" / "best_layers.tsv", "w") as fh:
        fh.write("stimulus_set\tlabel\tmodel\tlayer\tmeasure\tscore\n")
        fh.write("synthetic\tlabel\tmodel00\tlayer2\tRSA\t0.4\n")
        fh.write("synthetic\tlabel\tmodel01\tlayer1\tRSA\t0.7\n")
    # the similarity page shows the similarity analysis's own files (compare.h5), not heatmaps
    (root / "similarity").mkdir()
    (root / "similarity" / "a.heatmap.json").write_text(json.dumps(heatmap("x", 2, 2)))
    with caplog.at_level(logging.WARNING, logger="actpipe.site.heatmaps"):
        site = build_site(root).path
    assert "broken.heatmap.json: row 1 of 'values' must hold 2 numbers" in caplog.text
    pages = {p["name"]: p for p in read_data(site, "index")["pages"]}
    assert "transformer" in pages and "similarity" not in pages
    info = pages["transformer"]["info"]
    assert [m["file"] for m in info["maps"]] == ["synthetic/cka.heatmap.json"]
    data = read_data(site, info["maps"][0]["key"])
    assert data["y"]["labels"] == ["<a0>", "<a1>", "<a2>"] and data["values"][2] == [0.2, 0.3]
    rows = info["overview"][0]["rows"]
    assert [r[2] for r in rows] == ["model01", "model00"]  # best first


# ----------------------------------------------------------------------------- options, serve


def test_options_name_the_key_that_is_wrong():
    with pytest.raises(ValueError, match="site.top_paths"):
        SiteOptions(top_paths=0)
    with pytest.raises(ValueError, match="max_paths"):
        SiteOptions(top_paths=50, max_paths=10)
    options = SiteOptions.from_config({"top_paths": 5, "thumbnail_size": 32, "enabled": True})
    assert options.top_paths == 5


def test_serve_binds_localhost_and_serves_the_site(synthetic_site, tmp_path: Path):
    root, site, _ = synthetic_site
    assert site_folder(root) == site and site_folder(site) == site
    server = make_server(root, port=0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert server.server_address[0] == "127.0.0.1"
        url = url_of(server)
        with urllib.request.urlopen(url) as response:
            assert response.status == 200 and b"data/index.js" in response.read()
        with urllib.request.urlopen(url + "data/index.js") as response:
            assert response.headers["Content-Type"].startswith("text/javascript")
        with urllib.request.urlopen(url + "thumbnails/odd~2Bset/0/0.webp") as response:
            assert response.headers["Content-Type"] == "image/webp"
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(url + "../clusters/odd+set")
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(FileNotFoundError, match="build_site"):
        site_folder(tmp_path)


def test_serve_command_reports_a_missing_site(tmp_path: Path, capsys):
    from actpipe.cli import main

    assert main(["serve", str(tmp_path), "--port", "0"]) == 1
    assert "no site here" in capsys.readouterr().err


# ----------------------------------------------------------------------------- workflow


@pytest.mark.workflow
def test_site_jobs_follow_the_site_block(tmp_path: Path):
    from tests.helpers.workflow import run_snakemake, tiny_config, write_config

    config = tiny_config()
    write_config(tmp_path, config)
    out = run_snakemake(tmp_path, "-n", "--cores", "1").stdout
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out.split("Job stats:")[1], flags=re.M))
    assert counts["make_thumbnails"] == "2"
    assert counts["build_site"] == "1"
    config["site"] = {"enabled": False}
    write_config(tmp_path, config)
    out = run_snakemake(tmp_path, "-n", "--cores", "1").stdout
    assert not re.search(r"^(build_site|make_thumbnails)\s", out, flags=re.M)
    config["site"] = {"top_path": 5}
    write_config(tmp_path, config)
    proc = run_snakemake(tmp_path, "-n", "--cores", "1", check=False)
    assert proc.returncode != 0 and "top_path" in proc.stdout + proc.stderr


def test_site_of_every_replicate_and_no_labels(tmp_path: Path):
    """Exposures as examples ({stimulus}#{replicate}) and a folder without labels.csv, through
    the library's own clustering and aggregation."""
    from actpipe.aggregation import aggregate_clusters

    rng = np.random.default_rng(5)
    folder = tmp_path / "stimuli"
    folder.mkdir()
    ids = [f"s{i:04d}" for i in range(8)]
    for sid in ids:
        Image.new("RGB", (16, 16), tuple(int(v) for v in rng.integers(0, 255, 3))).save(
            folder / f"{sid}.png"
        )
    values = {name: rng.normal(0, 1, (8, 2, 5)) for name in ("early", "late")}
    acts = write_activations(tmp_path / "acts.h5", "net", values, ids=ids)
    root = tmp_path / "results"
    run = root / "clusters" / "set" / "net" / "each"
    files = []
    for name in values:
        files.append(run / "layers" / f"{name}.h5")
        params = {"method": "kmeans", "k": 3, "replicates": "each", "standardize": True}
        cluster_layer(acts, "net", name, params, files[-1], "each")
    aggregate_clusters(files, run, acts, folder, {"stimulus_set": "set"})
    make_thumbnails(folder, root / "thumbnails" / "set")
    site = build_site(root, options=SiteOptions(paths_chunk=5, members_chunk=4)).path

    paths = json.loads((run / "paths.json").read_text())["paths"]
    data = read_data(site, "runs/set/net/each/run")
    assert data["exposures"] and not data["chunks"]["identity"] and data["labels"] == []
    assert data["layers"][0]["majority"] == {}
    examples, stimuli, replicates = [], [], []
    for q in range(-(-len(paths) // 5)):
        chunk = read_data(site, f"runs/set/net/each/paths/{q}")
        examples += chunk["ids"]
        stimuli += chunk["s"]
        replicates += chunk["r"]
    assert examples == list(paths) == [f"{sid}#{r}" for sid in ids for r in range(2)]
    assert [f"{ids[s]}#{r}" for s, r in zip(stimuli, replicates, strict=True)] == examples
    for c, files_of in enumerate(data["chunks"]["memberFiles"][1]):
        got = []
        for q in range(files_of):
            chunk = read_data(site, f"runs/set/net/each/members/late/{c}-{q}")
            got += [f"{ids[s]}#{r}" for s, r in zip(chunk["s"], chunk["r"], strict=True)]
        assert sorted(got) == sorted(e for e, p in paths.items() if p[1] == c)
    index = read_data(site, "index")
    assert index["sets"][0]["labels"] == [] and index["runs"][0]["exposures"]
    metrics = read_data(site, "metrics/set")
    assert metrics["labels"] == [] and "silhouette" in metrics["metrics"]
