"""The config schema and the code agree; gradients blocks and parameter-set scopes; canonical
config forms."""

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


def canonical_config(config: dict) -> dict:
    """What the workflow passes its rules, computed as common.smk does."""
    from actpipe.config import canonical, canonical_model, split_extraction

    validate(config, str(SCHEMA))
    full = schema()
    return {
        "stimuli": {
            k: canonical(v, full["$defs"]["stimulus_set"], full)
            for k, v in config["stimuli"].items()
        },
        "models": {k: canonical_model(v, full) for k, v in config["models"].items()},
        "extraction": split_extraction(
            canonical(config["extraction"], full["properties"]["extraction"], full)
        ),
    }


def test_configs_that_mean_the_same_have_one_canonical_form():
    plain = minimal()
    plain["stimuli"]["g"].update(contrast=1, orientations=4)
    plain["models"]["m"].update(reduce="mean", layers=["layer1", {"name": "layer2"}])
    plain["extraction"] = {"jitter": {"rotate": 5}}
    spelled = {
        "extraction": {"jitter": {"scale": [1, 1], "rotate": 5.0, "translate": 0}, "seed": 0},
        "models": {
            "m": {
                "layers": [
                    {"reduce": "mean", "name": "layer1"},
                    {"name": "layer2", "as": "layer2"},
                ],
                "weights": "random",
                "seed": 0,
                "name": "resnet18",
                "source": "torchvision",
                "reduce": "mean",
                "kwargs": {},
            }
        },
        "stimuli": {"g": {"orientations": 4, "contrast": 1.0, "source": "gratings", "size": 64}},
    }
    a, b = canonical_config(plain), canonical_config(spelled)
    assert repr(a) == repr(b)  # Snakemake compares parameters by their repr
    assert a["models"]["m"]["layers"] == [
        {"name": "layer1", "reduce": "mean"},
        {"name": "layer2", "reduce": "mean"},
    ]
    assert list(a["models"]["m"]) == sorted(a["models"]["m"])
    assert a["stimuli"]["g"]["contrast"] == 1.0 and isinstance(a["stimuli"]["g"]["contrast"], float)
    assert a["stimuli"]["g"]["spatial_frequencies"] == [2.0, 4.0, 8.0]
    assert isinstance(a["stimuli"]["g"]["orientations"], int)


def test_a_change_of_meaning_changes_the_canonical_form():
    base = minimal()
    other = minimal()
    other["models"]["m"]["layers"] = [{"name": "layer1", "as": "first"}]
    assert canonical_config(base)["models"] != canonical_config(other)["models"]
    third = minimal()
    third["models"]["m"]["layers"] = [{"name": "layer1", "reduce": "mean"}]
    assert canonical_config(base)["models"] != canonical_config(third)["models"]


def test_run_settings_are_split_from_what_is_computed():
    config = minimal()
    config["extraction"] = {"progress": False, "checkpoint_seconds": 5, "n_replicates": 2}
    computed, run = canonical_config(config)["extraction"]
    assert run == {
        "checkpoint_seconds": 5.0,
        "progress": False,
        "resume": True,
        "tune_malloc": True,
    }
    assert computed["n_replicates"] == 2 and "progress" not in computed
