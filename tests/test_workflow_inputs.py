"""The workflow with inputs as people bring them: layer names with any characters."""

from __future__ import annotations

import csv
import json

import pytest

from actpipe.names import layer_key
from actpipe.storage.reader import get_available_layers
from actpipe.storage.validate import validate_file
from tests.helpers.workflow import run_snakemake, tiny_config, write_config

pytestmark = pytest.mark.workflow

AWKWARD = "early/1: früh|x"


def test_any_layer_name_works_through_the_workflow(tmp_path):
    config = tiny_config()
    config["stimuli"] = {"gratings": config["stimuli"]["gratings"]}
    model = config["models"]["resnet18"]
    model["layers"] = [{"name": "layer1", "as": AWKWARD}, "layer3"]
    config["models"] = {"resnet18": model}
    write_config(tmp_path, config)
    run_snakemake(tmp_path, "--cores", "2")

    activations = tmp_path / "results/activations/gratings/resnet18.h5"
    assert validate_file(activations) == []
    assert validate_file(tmp_path / "results/activations/model_activations_gratings.h5") == []
    assert get_available_layers(activations, "resnet18") == [AWKWARD, "layer3"]

    folder = tmp_path / "results/clusters/gratings/resnet18/kmeans_k3"
    assert (folder / "layers" / f"{layer_key(AWKWARD)}.h5").is_file()
    assert json.loads((folder / "paths.json").read_text())["layers"] == [AWKWARD, "layer3"]
    metadata = json.loads((folder / "metadata.json").read_text())
    assert list(metadata["clusters_per_layer"]) == [AWKWARD, "layer3"]
    with open(folder / "quality.tsv", newline="", encoding="utf-8") as fh:
        assert [row["layer"] for row in csv.DictReader(fh, delimiter="\t")] == [AWKWARD, "layer3"]
    report = (tmp_path / "results/report.md").read_text()
    escaped = AWKWARD.replace("|", "\\|")  # a pipe would end the Markdown table cell
    assert f"`{escaped}`" in report
