"""The config schema and the code agree, and the schema refuses what nothing implements."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from actpipe.models.registry import SOURCE_NAMES
from actpipe.stimuli import GENERATORS

SCHEMA = Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml"


def schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


def minimal(**clustering) -> dict:
    return {
        "stimuli": {"g": {"source": "gratings"}},
        "models": {"m": {"source": "torchvision", "name": "resnet18", "layers": ["layer1"]}},
        "clustering": {"parameter_sets": clustering},
    }


def test_model_sources_are_the_registry_sources():
    assert schema()["$defs"]["model"]["properties"]["source"]["enum"] == list(SOURCE_NAMES)


def test_stimulus_sources_are_folder_and_the_generators():
    sources = schema()["$defs"]["stimulus_set"]["properties"]["source"]["enum"]
    assert sources == ["folder", *GENERATORS]


def test_default_config_validates():
    config = yaml.safe_load((SCHEMA.parents[2] / "config/config.yaml").read_text())
    validate(config, str(SCHEMA))


def test_clustering_activations_x_gradients_is_refused_saying_why():
    validate(minimal(s={"method": "spectral", "k": 2, "input": "activations"}), str(SCHEMA))
    with pytest.raises(WorkflowError) as error:
        validate(
            minimal(s={"method": "spectral", "k": 2, "input": "activations_x_gradients"}),
            str(SCHEMA),
        )
    assert "activations_x_gradients" in str(error.value)


@pytest.mark.workflow
def test_workflow_refuses_activations_x_gradients_before_any_job(tmp_path):
    from tests.helpers.workflow import run_snakemake, tiny_config, write_config

    config = tiny_config()
    config["clustering"]["parameter_sets"]["grad"] = {
        "method": "spectral",
        "k": 2,
        "input": "activations_x_gradients",
    }
    write_config(tmp_path, config)
    proc = run_snakemake(tmp_path, "-n", "--cores", "1", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "clustering.parameter_sets.grad.input" in out
    assert "no rule of this workflow produces gradients" in out
