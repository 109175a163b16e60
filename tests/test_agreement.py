"""Activation vs activation x gradient agreement with labels, per layer, side by side."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from actpipe.agreement import agreement_markdown, input_agreement

LAYERS = ["conv", "fc"]


def run(pset, input_, method="spectral", k=10, aris=(0.1, 0.5), model="cnn", stimset="digits"):
    params = {"method": method, "k": k, "input": input_, "seed": 0}
    quality = [
        {"layer": layer, "ari_digit": "" if a is None else str(a), "nmi_digit": "0.5"}
        for layer, a in zip(LAYERS, aris, strict=True)
    ]
    metadata = {
        "stimulus_set": stimset,
        "model": model,
        "parameter_set": pset,
        "method": method,
        "params": params,
        "layers": LAYERS,
    }
    return SimpleNamespace(metadata=metadata, quality=quality)


def test_twins_are_paired_and_scores_copied():
    runs = [
        run("kmeans", "activations", method="kmeans", k=8, aris=(0.2, 0.3)),
        run("spec", "activations", aris=(0.1, 0.5)),
        run("spec_x", "activations_x_gradients", aris=(0.4, None)),
        run("other", "activations", model="vit"),  # clustered one way only: left out
    ]
    (table,) = input_agreement(runs)
    assert (table["stimulus_set"], table["model"], table["label"]) == ("digits", "cnn", "digit")
    assert table["layers"] == LAYERS
    names = [c["name"] for c in table["parameter_sets"]]
    assert names == ["kmeans", "spec", "spec_x"]
    spec_x = table["parameter_sets"][2]
    assert spec_x["ari"] == [0.4, None] and spec_x["nmi"] == [0.5, 0.5]
    assert spec_x["purity"] == [None, None]
    (pair,) = table["pairs"]
    assert pair == {
        "activations": "spec",
        "activations_x_gradients": "spec_x",
        "same_parameters": True,
        "ari_difference": [pytest.approx(0.3), None],
    }
    text = "\n".join(agreement_markdown([table]))
    assert "act x grad: spec_x (spectral, k=10)" in text
    assert "| `conv` | 0.200 | 0.100 | 0.400 | +0.300 |" in text
    assert "| `fc` | 0.300 | 0.500 | – | – |" in text


def test_without_a_twin_every_activation_set_is_paired_and_marked():
    runs = [
        run("kmeans", "activations", method="kmeans", k=8, aris=(0.2, 0.3)),
        run("spec_x", "activations_x_gradients", aris=(0.4, 0.1)),
    ]
    (table,) = input_agreement(runs)
    (pair,) = table["pairs"]
    assert pair["same_parameters"] is False
    assert pair["ari_difference"] == [pytest.approx(0.2), pytest.approx(-0.2)]
    assert "Δ spec_x − kmeans *" in "\n".join(agreement_markdown([table]))
    assert input_agreement([run("a", "activations")]) == []
    assert agreement_markdown([]) == []
