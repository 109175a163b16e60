"""Attention summaries, the report's transformer section and the site page's data, against
the activation file read with plain h5py; and the workflow end to end with probes and metrics.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import yaml

from actpipe.attention import attention_page_data, attention_summary, summarise_attention
from actpipe.errors import FormatError
from actpipe.extraction import ExtractionOptions, extract_activations
from actpipe.probes import METRICS, PATTERN_REDUCTIONS
from actpipe.report import render_report
from actpipe.stimuli import materialise_stimuli
from tests.helpers.transformers import probe_spec
from tests.helpers.workflow import REPO, run_snakemake, tiny_config, write_config

LAYERS = [
    "blocks.0",
    {"name": "blocks.1.attn.pattern", "reduce": "cls_row"},
    {"name": "blocks.2.attn.pattern", "reduce": "flatten"},
]


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("attention")
    stimuli = materialise_stimuli(
        {"source": "gratings", "size": 48, "orientations": 3, "phases": 1},
        tmp / "gratings",
    )
    spec, _, _ = probe_spec(tmp, "deit_distilled", LAYERS, metrics={"names": "all"})
    options = ExtractionOptions(n_replicates=2, progress=False)
    out = extract_activations(spec, stimuli, tmp / "acts.h5", options, "gratings")
    return out, tmp


def test_summary_tables_are_means_over_every_exposure(extracted):
    path, tmp = extracted
    summary_path = summarise_attention(path, "deit_distilled", tmp / "summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["kind"] == "attention-summary"
    assert summary["blocks"] == [0, 1, 2] and summary["heads"] == 3
    assert summary["n_stimuli"] == 9 and summary["n_replicates"] == 2
    assert summary["transformer"]["prefix_tokens"] == 2
    assert list(summary["metrics"]) == list(METRICS)
    with h5py.File(path, "r") as f:
        for metric, entry in summary["metrics"].items():
            for row, block in enumerate(summary["blocks"]):
                values = f[f"deit_distilled/layers/blocks.{block}.attn.{metric}"][()]
                flat = values.reshape(-1, 3).astype(np.float64)
                np.testing.assert_allclose(entry["mean"][row], flat.mean(0), rtol=1e-5)
                np.testing.assert_allclose(entry["std"][row], flat.std(0), rtol=1e-5, atol=1e-9)
                np.testing.assert_allclose(entry["max"][row], flat.max(0), rtol=1e-5)
    assert summary["patterns"] == {
        "1": {"dataset": "blocks.1.attn.pattern", "reduce": "cls_row"},
        "2": {"dataset": "blocks.2.attn.pattern", "reduce": "flatten"},
    }

    text = render_report([], attention=[summary_path])
    assert "## Inside the transformers" in text
    assert "### deit_distilled on `gratings`" in text
    table = text[text.index("**density**") :]
    row = next(line for line in table.splitlines() if line.startswith("| `blocks.2`"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    expected = summary["metrics"]["density"]["mean"][2]
    assert [float(c) for c in cells[1:4]] == pytest.approx(expected, rel=1e-2)
    assert float(cells[4]) == pytest.approx(np.mean(expected), rel=1e-2)


def test_page_data_heatmaps_and_class_token_attention(extracted):
    path, tmp = extracted
    summary = attention_summary(path, "deit_distilled")
    with h5py.File(path, "r") as f:
        ids = f["deit_distilled/stimulus_ids"].asstr()[()].tolist()
        row1 = f["deit_distilled/layers/blocks.1.attn.pattern"][()]
        full2 = f["deit_distilled/layers/blocks.2.attn.pattern"][()]
    page = attention_page_data(summary, path, examples=[ids[4], ids[0]])
    json.dumps(page)  # JSON-ready
    heat = page["heatmaps"]["attention_distance"]
    assert heat["rows"] == ["blocks.0", "blocks.1", "blocks.2"]
    assert heat["columns"] == ["h0", "h1", "h2"] and heat["units"] == "pixels"
    assert heat["values"] == summary["metrics"]["attention_distance"]["mean"]
    cls = page["cls_attention"]
    assert cls["grid"] == [3, 3] and cls["prefix_tokens"] == 2
    first = cls["examples"][0]
    assert first["stimulus_id"] == ids[4] and first["image"].endswith(f"{ids[4]}.png")
    np.testing.assert_allclose(
        first["blocks"]["blocks.1"]["patches"], row1[4, 0, :, 2:].reshape(3, 3, 3), rtol=1e-5
    )
    np.testing.assert_allclose(
        first["blocks"]["blocks.1"]["prefix_share"], row1[4, 0, :, :2].sum(-1), rtol=1e-5
    )
    cls_row2 = full2[0, 0].reshape(3, 11, 11)[:, 0]
    np.testing.assert_allclose(
        cls["examples"][1]["blocks"]["blocks.2"]["patches"],
        cls_row2[:, 2:].reshape(3, 3, 3),
        rtol=1e-5,
    )
    # Without the activation file only the heatmaps.
    assert attention_page_data(summary)["cls_attention"] is None


def test_site_heatmaps_follow_the_site_contract(extracted):
    from actpipe.site.heatmaps import read_heatmap

    path, tmp = extracted
    summary_path = summarise_attention(
        path, "deit_distilled", tmp / "t" / "summary.json", tmp / "t" / "maps", examples=2
    )
    summary = json.loads(summary_path.read_text())
    files = sorted(
        p.relative_to(tmp / "t" / "maps").as_posix() for p in (tmp / "t/maps").rglob("*")
    )
    expected = [f"{m}.heatmap.json" for m in METRICS]
    expected += [f"cls_attention/blocks.{b}/{n}.heatmap.json" for b in (1, 2) for n in (0, 1)]
    assert sorted(f for f in files if f.endswith(".json")) == sorted(expected)
    density = read_heatmap(tmp / "t/maps/density.heatmap.json")
    assert density["y"]["labels"] == ["blocks.0", "blocks.1", "blocks.2"]
    assert density["x"]["labels"] == ["h0", "h1", "h2"]
    assert density["values"] == summary["metrics"]["density"]["mean"]
    assert (density["zmin"], density["zmax"]) == (0.0, 1.0)
    cls = read_heatmap(tmp / "t/maps/cls_attention/blocks.1/1.heatmap.json")
    with h5py.File(path, "r") as f:
        ids = f["deit_distilled/stimulus_ids"].asstr()[()].tolist()
        row = f["deit_distilled/layers/blocks.1.attn.pattern"][1, 0]  # (heads, keys)
    assert ids[1] in cls["title"] and cls["y"]["labels"] == ["r0", "r1", "r2"]
    assert cls["x"]["labels"][:4] == ["h0 c0", "h0 c1", "h0 c2", "h1 c0"]
    grid = np.asarray(cls["values"])  # rows x (heads * columns)
    np.testing.assert_allclose(
        grid.reshape(3, 3, 3).transpose(1, 0, 2), row[:, 2:].reshape(3, 3, 3), rtol=1e-5
    )


def test_summary_of_a_model_without_metrics_says_what_to_do(tmp_path):
    stimuli = materialise_stimuli(
        {"source": "gratings", "size": 48, "orientations": 2, "phases": 1}, tmp_path / "g"
    )
    spec, _, _ = probe_spec(tmp_path, "vit", ["blocks.0"], metrics=None)
    out = extract_activations(spec, stimuli, tmp_path / "a.h5", ExtractionOptions(progress=False))
    with pytest.raises(FormatError, match="metrics:"):
        attention_summary(out, "vit")


def test_schema_lists_the_metrics_and_reductions():
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    assert schema["$defs"]["metric_names"]["items"]["enum"] == list(METRICS)
    reductions = schema["$defs"]["reduce"]["enum"]
    assert schema["$defs"]["layer_reduce"]["enum"] == reductions + list(PATTERN_REDUCTIONS)


@pytest.mark.workflow
def test_workflow_with_probes_and_metrics(tmp_path):
    config = tiny_config()
    config["stimuli"].pop("digits")
    config["models"].pop("resnet18")
    vit = config["models"]["vit_tiny"]
    vit["layers"] = [
        "blocks.0",
        {"name": "blocks.11.attn.pattern", "reduce": "cls_row"},
        "blocks.5.attn.z@h2",
    ]
    vit["metrics"] = {"names": ["attention_entropy", "sink_share"], "blocks": [0, 11]}
    write_config(tmp_path, config)
    run_snakemake(tmp_path, "--cores", "2")
    acts = tmp_path / "results/activations/gratings/vit_tiny.h5"
    results = tmp_path / "results/transformer/gratings/vit_tiny"
    summary = json.loads((results / "summary.json").read_text())
    assert (results / "maps/sink_share.heatmap.json").is_file()
    assert len(list((results / "maps/cls_attention/blocks.11").glob("*.heatmap.json"))) == 4
    with h5py.File(acts, "r") as f:
        z = f["vit_tiny/layers/blocks.5.attn.z"]
        assert z.shape == (8, 2, 3, 64)
        sink = f["vit_tiny/layers/blocks.11.attn.sink_share"][()]
        assert sink.shape == (8, 2, 3)
        assert "blocks.5.attn.sink_share" not in f["vit_tiny/layers"]
    np.testing.assert_allclose(
        summary["metrics"]["sink_share"]["mean"][1], sink.reshape(-1, 3).mean(0), rtol=1e-5
    )
    folder = tmp_path / "results/clusters/gratings/vit_tiny/kmeans_k3"
    paths = json.loads((folder / "paths.json").read_text())
    assert paths["layers"] == ["blocks.0", "blocks.11.attn.pattern", "blocks.5.attn.z@h2"]
    report = (tmp_path / "results/report.md").read_text()
    assert "## Inside the transformers" in report and "**sink_share**" in report
    if (tmp_path / "results/site/index.html").exists():  # the site's transformer page
        assert "Transformer metrics" in (tmp_path / "results/site/data/index.js").read_text()
    # One cluster file per layer, the selector part of its name (however names are encoded).
    assert len(list((folder / "layers").glob("blocks.5.attn.z*h2.h5"))) == 1
    # A metrics edit reruns that model's extraction and its summary.
    vit["metrics"]["names"].append("density")
    write_config(tmp_path, config)
    dry = run_snakemake(tmp_path, "-n", "--cores", "2").stdout
    assert "extract_activations" in dry and "summarise_attention" in dry
