"""The workflow over an ONNX classifier as torch's exporter writes it: default tensor names
(with ``/``), a fixed batch of 1, weights in external data, on a folder of JPEGs kept in
class subfolders (the ImageFolder layout)."""

from __future__ import annotations

import csv
import json

import numpy as np
import onnx
import pytest
import torch

from actpipe import get_available_images, get_available_layers
from actpipe.names import layer_key
from actpipe.storage.validate import validate_file
from tests.helpers.onnx_exports import Classifier, export_default, save_external
from tests.helpers.workflow import run_snakemake, write_config

pytestmark = pytest.mark.workflow

SIZE = 32


def test_workflow_over_an_exported_classifier_with_external_data(tmp_path):
    from PIL import Image

    torch.manual_seed(0)
    example = torch.zeros(1, 3, SIZE, SIZE)
    plain = export_default(Classifier(size=SIZE), tmp_path / "plain.onnx", example)
    (tmp_path / "model").mkdir()
    path = save_external(plain, tmp_path / "model" / "classifier.onnx")
    graph = onnx.load(str(path), load_external_data=False)
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    relu = [n.output[0] for n in graph.graph.node if n.op_type == "Relu"]
    assert relu == ["/features/features.2/Relu_output_0", "/features/features.5/Relu_output_0"]
    logits = graph.graph.output[0].name
    layers = [relu[0], {"name": relu[1], "as": "conv2"}, logits]
    names = [relu[0], "conv2", logits]

    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    classes = {"cats": 7, "dogs": 5}
    ids = []
    for name, count in classes.items():
        (folder / name).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 256, (40 + i, 48, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / name / f"IMG_{i:04d}.JPG", quality=85)
            ids.append(f"{name}/IMG_{i:04d}")
    config = {
        "stimuli": {"photos": {"source": "folder", "path": str(folder), "recursive": True}},
        "models": {
            "classifier": {
                "source": "onnx",
                "path": str(path),
                "layers": layers,
                "preprocess": {"preset": "imagenet", "size": SIZE, "resize": 36},
                "batch_size": 5,
            }
        },
        "extraction": {"n_replicates": 1, "progress": False},
        "clustering": {"parameter_sets": {"kmeans_k3": {"method": "kmeans", "k": 3, "n_init": 2}}},
    }
    write_config(tmp_path, config)
    run_snakemake(tmp_path, "--cores", "2")

    activations = tmp_path / "results/activations/photos/classifier.h5"
    for h5 in [activations, tmp_path / "results/activations/model_activations_photos.h5"]:
        assert validate_file(h5) == []
    assert get_available_layers(activations, "classifier") == names
    assert get_available_images(activations, "classifier") == sorted(ids)
    clusters = tmp_path / "results/clusters/photos/classifier/kmeans_k3"
    for name in names:
        assert (clusters / "layers" / f"{layer_key(name)}.h5").is_file()
    assert json.loads((clusters / "paths.json").read_text())["layers"] == names
    with open(clusters / "quality.tsv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert [row["layer"] for row in rows] == names
    assert all(row["ari_folder"] != "" for row in rows)  # the class folder is a label
    assert json.loads((clusters / "metadata.json").read_text())["label_columns"] == ["folder"]
    report = (tmp_path / "results/report.md").read_text()
    assert f"`{relu[0]}`" in report and "`conv2`" in report
    # The cached copy holds the graph only; the weights stay beside the model.
    cached = list((tmp_path / "results/models/instrumented").glob("*.instrumented.onnx"))
    data = path.parent / "classifier.onnx.data"
    assert len(cached) == 1 and cached[0].stat().st_size < data.stat().st_size
    assert (tmp_path / "results/site/index.html").is_file()
    proc = run_snakemake(tmp_path, "-n", "--cores", "1")
    assert "Nothing to be done" in proc.stdout + proc.stderr
