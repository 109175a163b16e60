"""The run report: best layer per label and path counts, from hand-written cluster folders."""

from __future__ import annotations

import json
from pathlib import Path

from actpipe.report import ClusterRun, render_report, write_report

HEADER = "layer\tmethod\tk\tn_nonempty\tsilhouette\tdavies_bouldin\tsize_min\tsize_median\t"
HEADER += "size_max\tari_digit\tnmi_digit\tpurity_digit\n"


def make_run(root: Path, model: str, aris: list[float], paths: dict[str, list[int]]) -> Path:
    folder = root / "digits" / model / "km"
    folder.mkdir(parents=True)
    layers = [f"l{i}" for i in range(len(aris))]
    (folder / "metadata.json").write_text(
        json.dumps(
            {
                "stimulus_set": "digits",
                "model": model,
                "parameter_set": "km",
                "method": "kmeans",
                "params": {"k": 2},
                "layers": layers,
                "n_examples": len(paths),
            }
        )
    )
    rows = "".join(
        f"{layer}\tkmeans\t2\t2\t0.5\t0.9\t1\t2\t3\t{ari}\t{ari / 2}\t0.75\n"
        for layer, ari in zip(layers, aris, strict=True)
    )
    (folder / "quality.tsv").write_text(HEADER + rows)
    (folder / "paths.json").write_text(json.dumps({"layers": layers, "paths": paths}))
    return folder


def test_report_names_the_best_layer_and_counts_paths(tmp_path: Path) -> None:
    paths = {"a": [0, 1], "b": [0, 1], "c": [1, 0], "d": [1, -1]}  # d dropped in layer 2
    a = make_run(tmp_path, "net_a", [0.1, 0.8], paths)
    b = make_run(tmp_path, "net_b", [0.9, 0.2], {"a": [0, 0], "b": [1, 1]})

    run = ClusterRun.read(a)
    assert run.labels == ["digit"]
    # complete paths: a, b, c -> two distinct, the commonest (0, 1) taken by two examples
    assert run.path_summary() == (3, 2, 2)

    text = render_report([a, b])
    best = text[text.index("**digit**") : text.index("### net_a")]
    rows = [line for line in best.splitlines() if line.startswith("| net_")]
    # sorted by ARI: net_b's l0 (0.9) before net_a's l1 (0.8), NMI = ARI / 2 copied through
    assert rows[0].split(" | ")[:6] == ["| net_b", "km", "`l0`", "0.900", "0.450", "0.750 |"]
    assert rows[1].split(" | ")[:4] == ["| net_a", "km", "`l1`", "0.800"]
    assert "2 distinct paths among 3 examples; the most common one is taken by 2" in text

    out = write_report([a, b], tmp_path / "report.md")
    assert out.read_text() == text
