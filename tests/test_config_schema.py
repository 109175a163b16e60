"""The config schema and the code agree; gradients blocks and parameter-set scopes."""

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


def test_activations_x_gradients_scopes_and_gradients_blocks_validate():
    config = minimal(
        s={
            "method": "spectral",
            "k": 2,
            "input": "activations_x_gradients",
            "models": ["m"],
            "stimuli": ["g"],
        }
    )
    for block in (
        False,
        True,
        {},
        {"target": "predicted", "store": ["gradient"], "batch_size": 4, "stimuli": ["g"]},
        {"target": {"label": "orientation", "classes": {"0.0": 0, "22.5": 1}}},
        {"target": {"index": 3}},
        {"target": {"loss": "orientation"}},
    ):
        config["models"]["m"]["gradients"] = block
        validate(config, str(SCHEMA))
    config["extraction"] = {"gradients": {"target": "predicted"}}
    validate(config, str(SCHEMA))


@pytest.mark.parametrize(
    "block",
    [
        {"target": "largest"},
        {"target": {"label": "a", "index": 2}},
        {"target": {"index": -1}},
        {"store": ["activations"]},
        {"store": []},
        {"batch_size": 0},
        {"targets": "predicted"},
        "yes",
    ],
)
def test_bad_gradients_blocks_are_schema_errors(block):
    config = minimal(s={"method": "kmeans", "k": 2})
    config["models"]["m"]["gradients"] = block
    with pytest.raises(WorkflowError):
        validate(config, str(SCHEMA))


def test_parameter_set_scopes_must_be_lists_of_names():
    for scope in ({"models": "m"}, {"stimuli": []}, {"models": ["a b"]}):
        with pytest.raises(WorkflowError):
            validate(minimal(s={"method": "kmeans", "k": 2, **scope}), str(SCHEMA))
