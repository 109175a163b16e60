"""Gradients and activation x gradient: against captum, against finite differences, against
the activation file's rows, and bad input refused before the pass starts."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from actpipe.errors import LayerError, ModelError, StimulusError, TargetError
from actpipe.extraction import ExtractionOptions, extract_activations, reduce_output
from actpipe.gradients import GradientCapture, GradientOptions, Target, compute_gradients
from actpipe.gradients.targets import select
from actpipe.models import LayerSpec, ModelSpec, build_model
from actpipe.preprocess import expose, prepare_image
from actpipe.stimuli import load_stimulus_folder, materialise_stimuli
from actpipe.storage.validate import validate_file
from tests.helpers.models import small_net

SIZE = 32
TOLERANCE = 1e-5

captum = pytest.importorskip("captum")


def captum_layer(model, module, inputs, target, multiply, forward=None) -> torch.Tensor:
    """captum's LayerGradientXActivation (``multiply=False``: the plain layer gradient)."""
    from captum.attr import LayerGradientXActivation

    method = LayerGradientXActivation(forward or model, module, multiply_by_inputs=multiply)
    return method.attribute(inputs, target=target)


def assert_close(got: torch.Tensor, ref: torch.Tensor, what: str) -> None:
    got, ref = got.detach(), ref.detach()
    assert got.shape == ref.shape, what
    scale = max(1.0, float(ref.abs().max()))
    error = float((got.double() - ref.double()).abs().max())
    assert error <= TOLERANCE * scale, f"{what}: max |difference| {error:.3g}"


def check_against_captum(model, layers, inputs, target, labels=None):
    """Every layer's gradient and activation x gradient equal captum's, reduced the same way."""
    capture = GradientCapture(model, layers, "m")
    try:
        result = capture.run(inputs, target, labels)
    finally:
        capture.remove()
    modules = dict(model.named_modules())
    if target.kind == "loss":

        def forward(x):
            return F.cross_entropy(model(x), labels, reduction="none")

        reference_target, reference_forward = None, forward
    else:
        reference_target, reference_forward = result.target_index, None
    for layer in layers:
        for quantity, multiply in (("activation_x_gradient", True), ("gradient", False)):
            full = captum_layer(
                model,
                modules[layer.name],
                inputs,
                reference_target,
                multiply,
                reference_forward,
            )
            ref, _ = reduce_output(full, layer.reduce, layer.name)
            assert_close(result.values[quantity][layer.name], ref, f"{layer.name} {quantity}")
    return result


@pytest.fixture(scope="module")
def resnet():
    spec = ModelSpec.from_config(
        "resnet18", {"source": "torchvision", "name": "resnet18", "layers": ["layer1"]}
    )
    model, _ = build_model(spec)
    return model


RESNET_LAYERS = [
    LayerSpec("layer1.0.bn1", "flatten"),  # followed by ReLU(inplace=True)
    LayerSpec("layer1", "mean"),
    LayerSpec("layer2.1", "max"),
    LayerSpec("layer4", "mean"),
    LayerSpec("layer4.1", "flatten"),  # the same tensor as layer4's output
    LayerSpec("avgpool", "flatten"),
    LayerSpec("fc", "flatten"),
]


@pytest.mark.parametrize(
    "target",
    [
        Target(),
        Target("label", column="c"),
        Target("index", index=7),
        Target("loss", column="c"),
    ],
    ids=["predicted", "label", "index", "loss"],
)
def test_resnet18_equals_captum_for_every_target(resnet, target):
    torch.manual_seed(1)
    inputs = torch.randn(5, 3, SIZE, SIZE)
    labels = torch.tensor([3, 0, 999, 5, 3])
    result = check_against_captum(resnet, RESNET_LAYERS, inputs, target, labels)
    logits = resnet(inputs).detach()
    expected_index = {
        "predicted": logits.argmax(1),
        "label": labels,
        "index": torch.full((5,), 7),
        "loss": labels,
    }[target.kind]
    torch.testing.assert_close(result.target_index, expected_index)
    expected_value = (
        F.cross_entropy(logits, labels, reduction="none")
        if target.kind == "loss"
        else logits.gather(1, expected_index[:, None])[:, 0]
    )
    torch.testing.assert_close(result.target_value, expected_value, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(result.predicted_index, logits.argmax(1))


def test_inplace_relu_after_a_layer_leaves_its_activation_and_gradient_intact(resnet):
    """Independent of captum: the same network with every ReLU out of place, its layer output
    kept with retain_grad."""
    import copy

    torch.manual_seed(2)
    inputs = torch.randn(3, 3, SIZE, SIZE)
    layer = LayerSpec("layer1.0.bn1", "flatten")
    capture = GradientCapture(resnet, [layer], "m")
    result = capture.run(inputs, Target("index", index=4))
    capture.remove()
    reference = copy.deepcopy(resnet)
    for module in reference.modules():
        if isinstance(module, torch.nn.ReLU):
            module.inplace = False
    kept = {}

    def keep(module, args, output):
        output.retain_grad()
        kept["a"] = output

    handle = dict(reference.named_modules())["layer1.0.bn1"].register_forward_hook(keep)
    reference(inputs.clone().requires_grad_(True))[:, 4].sum().backward()
    handle.remove()
    a, g = kept["a"].detach().flatten(1), kept["a"].grad.flatten(1)
    assert (a < 0).any()  # the output before the ReLU, not after
    assert_close(result.values["gradient"]["layer1.0.bn1"], g, "gradient")
    assert_close(result.values["activation_x_gradient"]["layer1.0.bn1"], a * g, "act x grad")


@pytest.fixture(scope="module")
def trained_digits(tmp_path_factory):
    """The digits CNN after a short training (3 epochs: learned weights, not a good model)."""
    from actpipe.models.digits_cnn import train_digits_cnn

    folder = tmp_path_factory.mktemp("digits_cnn")
    weights = folder / "digits_cnn.safetensors"
    info = train_digits_cnn(weights, folder / "digits_cnn.json", epochs=3, min_accuracy=0.3)
    return weights, info


def digits_spec(weights, **overrides) -> ModelSpec:
    block = {
        "source": "actpipe",
        "name": "digits_cnn",
        "weights": str(weights),
        "layers": [
            {"name": "features.block1", "reduce": "flatten"},
            "features.block3",
            {"name": "fc1", "reduce": "flatten"},
            {"name": "fc2", "reduce": "flatten"},
        ],
        "reduce": "mean",
        "preprocess": {
            "preset": "none",
            "size": SIZE,
            "resize": SIZE,
            "mean": [0.5, 0.5, 0.5],
            "std": [0.5, 0.5, 0.5],
        },
        "batch_size": 7,
    }
    block.update(overrides)
    return ModelSpec.from_config("digits_cnn", block)


def test_trained_digits_cnn_equals_captum(trained_digits):
    from actpipe.models.digits_cnn import digits_tensors

    weights, info = trained_digits
    assert info["held_out_accuracy"] > 0.3
    spec = digits_spec(weights)
    model, _ = build_model(spec)
    x, y = digits_tensors(SIZE)
    inputs, labels = x[::97], y[::97].long()
    check_against_captum(model, list(spec.layers), inputs, Target("label", column="digit"), labels)
    check_against_captum(model, list(spec.layers), inputs, Target("loss", column="digit"), labels)


def test_vit_equals_captum():
    import timm

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", img_size=SIZE, num_classes=10).eval()
    layers = [
        LayerSpec("patch_embed", "mean"),
        LayerSpec("blocks.0", "cls"),
        LayerSpec("blocks.5.attn", "mean"),
        LayerSpec("blocks.11", "flatten"),
        LayerSpec("norm", "max"),
        LayerSpec("head", "flatten"),
    ]
    inputs = torch.randn(4, 3, SIZE, SIZE)
    check_against_captum(model, layers, inputs, Target())
    check_against_captum(model, layers, inputs, Target("index", index=2))


def shifted_output(model, module, inputs, shift):
    """``(model output, the module's output)`` with ``shift`` added to the module's output."""
    kept = []

    def hook(m, i, o):
        kept.append(o)
        return o + shift

    handle = module.register_forward_hook(hook)
    try:
        with torch.no_grad():
            return model(inputs), kept[0] if kept else None
    finally:
        handle.remove()


def test_gradients_equal_central_finite_differences():
    """dt_b/da_b[k] ~ (t_b(a + eps e_k) - t_b(a - eps e_k)) / 2 eps, every element k of every
    layer output, in float64; all perturbations of one layer in one batch."""
    torch.manual_seed(0)
    model = small_net().double().eval()
    inputs = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    labels = torch.tensor([1, 3])
    layers = [
        LayerSpec("conv", "flatten"),
        LayerSpec("act", "flatten"),
        LayerSpec("conv2", "flatten"),
    ]
    eps = 1e-6
    for target in (Target("index", index=2), Target("loss", column="y")):
        capture = GradientCapture(model, layers, "tiny")
        result = capture.run(inputs, target, labels)
        capture.remove()
        for layer in layers:
            module = dict(model.named_modules())[layer.name]
            a = shifted_output(model, module, inputs, 0.0)[1]
            k = a[0].numel()
            # row k * 2 + b: example b with element k of its layer output moved by +-eps
            delta = torch.zeros((k, 2, k), dtype=torch.float64)
            delta[torch.arange(k), :, torch.arange(k)] = eps
            delta = delta.reshape(k * 2, *a.shape[1:])
            repeated, repeated_labels = inputs.repeat(k, 1, 1, 1), labels.repeat(k)
            up = select(target, shifted_output(model, module, repeated, delta)[0], repeated_labels)
            down = select(
                target, shifted_output(model, module, repeated, -delta)[0], repeated_labels
            )
            numeric = ((up[0] - down[0]) / (2 * eps)).reshape(k, 2).T
            np.testing.assert_allclose(
                result.values["gradient"][layer.name].numpy(), numeric.numpy(), atol=1e-7
            )
            np.testing.assert_allclose(
                result.values["activation_x_gradient"][layer.name].numpy(),
                (a.flatten(1) * numeric).numpy(),
                atol=1e-7,
            )


# --------------------------------------------------------------------------- the pass


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory):
    """20 digits plus one unreadable image (skipped with on_bad_image: skip)."""
    root = tmp_path_factory.mktemp("stim") / "digits"
    stimuli = materialise_stimuli({"source": "digits", "size": SIZE, "n": 20}, root)
    (root / "zz_broken.png").write_bytes(stimuli.paths[0].read_bytes()[:50])
    with open(root / "labels.csv", "a") as fh:
        fh.write("zz_broken,3\n")
    return root


def options(**overrides) -> ExtractionOptions:
    block = {
        "n_replicates": 3,
        "seed": 4,
        "progress": False,
        "on_bad_image": "skip",
        "jitter": {"translate": 2, "rotate": 8},
    }
    block.update(overrides)
    return ExtractionOptions.from_config(block)


def exposures(spec: ModelSpec, stimuli, opts: ExtractionOptions) -> torch.Tensor:
    """The inputs of every exposure, made independently of the pass."""
    tensors = []
    for sid, path in zip(stimuli.ids, stimuli.paths, strict=True):
        if sid.startswith("zz"):
            continue
        image = prepare_image(path, spec.preprocess)
        tensors.append(expose(image, sid, opts.n_replicates, opts.jitter, spec.preprocess)[0])
    return torch.cat(tensors)


def test_gradient_file_rows_are_the_activation_file_rows(trained_digits, digits_folder, tmp_path):
    weights, _ = trained_digits
    spec = digits_spec(weights)
    opts = options()
    gradients = GradientOptions.from_config({"target": {"label": "digit"}})
    acts = extract_activations(spec, digits_folder, tmp_path / "a.h5", opts, "digits")
    grads = compute_gradients(spec, digits_folder, tmp_path / "g.h5", opts, gradients, "digits")
    assert validate_file(grads) == []
    stimuli = load_stimulus_folder(digits_folder)
    with h5py.File(acts, "r") as fa, h5py.File(grads, "r") as fg:
        a, g = fa["digits_cnn"], fg["digits_cnn"]
        assert g["stimulus_ids"].asstr()[()].tolist() == a["stimulus_ids"].asstr()[()].tolist()
        assert "zz_broken" not in g["stimulus_ids"].asstr()[()].tolist()
        np.testing.assert_array_equal(g["jitter"][()], a["jitter"][()])
        assert json.loads(g.attrs["skipped_ids"]) == json.loads(a.attrs["skipped_ids"])
        assert json.loads(g.attrs["preprocess"]) == json.loads(a.attrs["preprocess"])
        assert g.attrs["layers_quantity"] == "activation_x_gradient"
        assert json.loads(g.attrs["target"]) == {"kind": "label", "column": "digit"}
        n = len(stimuli) - 1
        for layer in spec.layer_names:
            ag = g[f"activation_x_gradient/{layer}"]
            assert g[f"layers/{layer}"].attrs["quantity"] == "activation_x_gradient"
            assert g[f"gradient/{layer}"].attrs["quantity"] == "gradient"
            assert ag.shape == a[f"layers/{layer}"].shape == (n, 3, ag.shape[2])
            if a[f"layers/{layer}"].attrs["reduce_applied"] in ("flatten", "none"):
                # flattened: act x grad is the activation file's values times the gradients
                np.testing.assert_allclose(
                    ag[()], a[f"layers/{layer}"][()] * g[f"gradient/{layer}"][()], atol=1e-6
                )
        labels = dict(zip(stimuli.ids, stimuli.labels["digit"], strict=True))
        ids = g["stimulus_ids"].asstr()[()].tolist()
        expected = np.repeat([[int(labels[s])] for s in ids], 3, axis=1)
        np.testing.assert_array_equal(g["target_index"][()], expected)
        stored = {
            q: {layer: g[f"{q}/{layer}"][()].reshape(n * 3, -1) for layer in spec.layer_names}
            for q in ("gradient", "activation_x_gradient")
        }
        target_value = g["target_value"][()].reshape(-1)
        predicted = g["predicted_index"][()].reshape(-1)
    # the stored values equal captum on inputs rebuilt independently of the pass
    model, _ = build_model(spec)
    inputs = exposures(spec, stimuli, opts)
    label_index = torch.from_numpy(expected.reshape(-1))
    modules = dict(model.named_modules())
    for layer in spec.layers:
        for quantity, multiply in (("activation_x_gradient", True), ("gradient", False)):
            full = captum_layer(model, modules[layer.name], inputs, label_index, multiply)
            ref, _ = reduce_output(full, layer.reduce, layer.name)
            assert_close(torch.from_numpy(stored[quantity][layer.name]), ref, layer.name)
    with torch.no_grad():
        logits = model(inputs)
    np.testing.assert_allclose(
        target_value, logits.gather(1, label_index[:, None])[:, 0].numpy(), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(predicted, logits.argmax(1).numpy())


def test_gradient_file_is_readable_by_the_reader_and_deterministic(
    trained_digits, digits_folder, tmp_path
):
    from actpipe import load_lazy_activations

    weights, _ = trained_digits
    spec = digits_spec(weights)
    gradients = GradientOptions.from_config({"store": ["gradient"]})
    first = compute_gradients(spec, digits_folder, tmp_path / "1.h5", options(), gradients)
    second = compute_gradients(spec, digits_folder, tmp_path / "2.h5", options(), gradients)
    with h5py.File(first, "r") as f1, h5py.File(second, "r") as f2:
        assert "activation_x_gradient" not in f1["digits_cnn"]
        assert f1["digits_cnn/gradient"] == f1["digits_cnn/layers"]  # the soft link
        for layer in spec.layer_names:
            np.testing.assert_array_equal(
                f1[f"digits_cnn/layers/{layer}"][()], f2[f"digits_cnn/layers/{layer}"][()]
            )
            assert f1[f"digits_cnn/layers/{layer}"].attrs["quantity"] == "gradient"
        stored = f1["digits_cnn/gradient/fc2"][()]
    with load_lazy_activations(first) as lazy:
        view = lazy["digits_cnn"].layer("fc2")
        np.testing.assert_array_equal(view.read(), stored)
        # the gradient of a logit w.r.t. the logits is one-hot at the target
        index = h5py.File(first, "r")["digits_cnn/target_index"][()]
        np.testing.assert_array_equal(stored.argmax(axis=2), index)
        np.testing.assert_allclose(stored.sum(axis=2), 1.0)


def test_an_interrupted_gradient_pass_resumes_to_the_same_file(
    trained_digits, digits_folder, tmp_path, monkeypatch
):
    import actpipe.extraction.run as run

    weights, _ = trained_digits
    spec = digits_spec(weights, batch_size=6)
    opts = options(checkpoint_seconds=0)
    gradients = GradientOptions()
    whole = compute_gradients(spec, digits_folder, tmp_path / "whole.h5", opts, gradients)
    original = run.ActivationWriter.write_rows
    calls = {"n": 0}

    def dies_on_third(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(run.ActivationWriter, "write_rows", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        compute_gradients(spec, digits_folder, tmp_path / "r.h5", opts, gradients)
    monkeypatch.setattr(run.ActivationWriter, "write_rows", original)
    assert not (tmp_path / "r.h5").exists()
    resumed = compute_gradients(spec, digits_folder, tmp_path / "r.h5", opts, gradients)
    with h5py.File(whole, "r") as fw, h5py.File(resumed, "r") as fr:
        for name in ("layers/fc1", "gradient/features.block1", "target_value", "jitter"):
            np.testing.assert_array_equal(
                fw[f"digits_cnn/{name}"][()], fr[f"digits_cnn/{name}"][()]
            )


# --------------------------------------------------------------------------- bad input


@pytest.fixture
def no_pass(monkeypatch):
    """Fail the test if the pass over the data starts."""
    import actpipe.gradients.run as run

    def started(*args, **kwargs):
        raise AssertionError("the pass over the data started")

    monkeypatch.setattr(run, "run_batches", started)


def tiny_spec(layers=("conv",), name="tests.helpers.models:tiny_net") -> ModelSpec:
    """A tiny ``source: python`` model on 8 x 8 images."""
    return ModelSpec.from_config(
        "tiny",
        {
            "source": "python",
            "name": name,
            "layers": list(layers),
            "reduce": "mean",
            "preprocess": {"preset": "none", "size": 8, "resize": 8},
            "batch_size": 4,
        },
    )


def labelled_folder(tmp_path, labels: list[str]):
    from PIL import Image

    folder = tmp_path / "labelled"
    folder.mkdir(exist_ok=True)
    rows = ["stimulus_id,kind"]
    rng = np.random.default_rng(0)
    for i, label in enumerate(labels):
        pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"s{i:02d}.png")
        rows.append(f"s{i:02d},{label}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_onnx_model_is_refused(tmp_path, no_pass):
    spec = ModelSpec.from_config("net", {"source": "onnx", "path": "net.onnx", "layers": ["a"]})
    with pytest.raises(ModelError, match="model 'net'.*torch.*gradients: false"):
        compute_gradients(spec, tmp_path, tmp_path / "g.h5")
    assert not list(tmp_path.iterdir())


def test_probe_layers_are_refused(tmp_path, no_pass):
    block = {
        "source": "timm",
        "name": "vit_tiny_patch16_224",
        "kwargs": {"img_size": 32},
        "layers": ["blocks.0", {"name": "blocks.1.attn.z", "as": "z"}],
    }
    spec = ModelSpec.from_config("vit", block)
    with pytest.raises(ModelError, match="model 'vit': gradients are taken.*'z' is a probe"):
        compute_gradients(spec, tmp_path, tmp_path / "g.h5")


def test_missing_label_is_refused(tmp_path, no_pass):
    folder = labelled_folder(tmp_path, ["a", "", "b"])
    gradients = GradientOptions.from_config({"target": {"label": "kind", "classes": {"a": 0}}})
    with pytest.raises(StimulusError, match="no 'kind' label for 1 stimulus id.*s01"):
        compute_gradients(tiny_spec(), folder, tmp_path / "g.h5", options(), gradients)
    other = GradientOptions.from_config({"target": {"loss": "colour"}})
    with pytest.raises(StimulusError, match="label column 'colour'.*its columns: kind"):
        compute_gradients(tiny_spec(), folder, tmp_path / "g.h5", options(), other)


def test_label_value_without_class_index_is_refused(tmp_path, no_pass):
    folder = labelled_folder(tmp_path, ["cat", "dog", "cat"])
    plain = GradientOptions.from_config({"target": {"label": "kind"}})
    with pytest.raises(TargetError, match="'cat' \\(e.g. 's00'\\).*integer class indices"):
        compute_gradients(tiny_spec(), folder, tmp_path / "g.h5", options(), plain)
    partial = GradientOptions.from_config({"target": {"label": "kind", "classes": {"cat": 1}}})
    with pytest.raises(TargetError, match="'dog' \\(e.g. 's01'\\).*add them to"):
        compute_gradients(tiny_spec(), folder, tmp_path / "g.h5", options(), partial)
    beyond = GradientOptions.from_config(
        {"target": {"label": "kind", "classes": {"cat": 1, "dog": 4}}}
    )
    with pytest.raises(TargetError, match="'dog' has class index 4 but the model has 4 outputs"):
        compute_gradients(tiny_spec(), folder, tmp_path / "g.h5", options(), beyond)
    index = GradientOptions.from_config({"target": {"index": 9}})
    with pytest.raises(TargetError, match="index 9 but the model has 4 outputs"):
        compute_gradients(tiny_spec(), folder, tmp_path / "g.h5", options(), index)
    assert not list(tmp_path.glob("*.h5")) and not list(tmp_path.glob(".*"))


@pytest.mark.parametrize("layer", ["side", "frozen"])
def test_layer_not_on_the_path_to_the_output_is_refused(tmp_path, no_pass, layer):
    folder = labelled_folder(tmp_path, ["0", "1"])
    with pytest.raises(LayerError, match=f"\\['{layer}'\\] are not on the path"):
        compute_gradients(tiny_spec(["conv", layer]), folder, tmp_path / "g.h5", options())
    assert not list(tmp_path.glob("*.h5")) and not list(tmp_path.glob(".*"))


def test_output_that_is_not_logits_is_refused(tmp_path, no_pass):
    folder = labelled_folder(tmp_path, ["0"])
    spec = tiny_spec(["0"], name="tests.helpers.models:features_only")
    with pytest.raises(ModelError, match="\\(batch, n_outputs\\) logits.*\\(1, 4, 8, 8\\)"):
        compute_gradients(spec, folder, tmp_path / "g.h5", options())


@pytest.mark.parametrize(
    "block, message",
    [
        ({"target": "largest"}, "not a target"),
        ({"target": {"label": "a", "index": 2}}, "exactly one of label, index or loss"),
        ({"target": {"index": -1}}, "index must be an output index"),
        ({"target": {"index": 1, "classes": {"a": 1}}}, "classes applies to label and loss"),
        ({"target": {"loss": "a", "classes": {"a": "x"}}}, "give an output index"),
        ({"store": ["activations"]}, "store"),
        ({"batch_size": 0}, "batch_size"),
        ({"targets": "predicted"}, "unknown key"),
    ],
)
def test_gradients_block_errors_name_the_key(block, message):
    with pytest.raises(ModelError, match=message):
        GradientOptions.from_config(block)


def test_gradients_block_defaults():
    options = GradientOptions.from_config({})
    assert options.target == Target()
    assert options.store == ("gradient", "activation_x_gradient")
    assert options.primary == "activation_x_gradient"
    assert GradientOptions.from_config({"store": "gradient"}).primary == "gradient"
    loss = GradientOptions.from_config({"target": {"loss": "digit", "classes": {3: 1}}})
    assert loss.target == Target("loss", column="digit", classes={"3": 1})


# --------------------------------------------------------------------------- clustering


def test_spectral_clustering_reads_the_stored_activation_x_gradient(tmp_path):
    from sklearn.cluster import SpectralClustering

    from actpipe.clustering import cluster_layer
    from actpipe.errors import ClusteringError

    folder = labelled_folder(tmp_path, [str(i % 4) for i in range(12)])
    spec = tiny_spec(["conv", "conv2"], name="tests.helpers.models:small_net")
    opts = options(n_replicates=2)
    acts = extract_activations(spec, folder, tmp_path / "a.h5", opts)
    both = compute_gradients(spec, folder, tmp_path / "g.h5", opts, GradientOptions())
    params = {"method": "spectral", "k": 3, "input": "activations_x_gradients", "gamma": 0.5}
    attrs = cluster_layer(acts, "tiny", "conv", params, tmp_path / "c.h5", "x", both)
    assert attrs["activations_x_gradients"] == "stored"
    with h5py.File(both, "r") as f:
        # mean over positions of a (.) g, then the replicate mean: not mean(a) * mean(g)
        rows = f["tiny/activation_x_gradient/conv"][()].astype(np.float64).mean(axis=1)
    expected = SpectralClustering(n_clusters=3, gamma=0.5, random_state=0).fit_predict(rows)
    with h5py.File(tmp_path / "c.h5", "r") as f:
        np.testing.assert_array_equal(f["labels"][()], expected)
    only = compute_gradients(
        spec, folder, tmp_path / "o.h5", opts, GradientOptions.from_config({"store": "gradient"})
    )
    with pytest.raises(ClusteringError, match="pooled with 'mean'.*add activation_x_gradient"):
        cluster_layer(acts, "tiny", "conv", params, tmp_path / "d.h5", "x", only)


def test_flattened_layers_may_be_multiplied_from_a_gradient_only_file(tmp_path):
    from actpipe.clustering import cluster_layer

    folder = labelled_folder(tmp_path, [str(i % 4) for i in range(12)])
    spec = tiny_spec(
        [{"name": "conv2", "reduce": "flatten"}], name="tests.helpers.models:small_net"
    )
    opts = options(n_replicates=1)
    acts = extract_activations(spec, folder, tmp_path / "a.h5", opts)
    both = compute_gradients(spec, folder, tmp_path / "g.h5", opts, GradientOptions())
    only = compute_gradients(
        spec, folder, tmp_path / "o.h5", opts, GradientOptions.from_config({"store": "gradient"})
    )
    params = {"method": "spectral", "k": 3, "input": "activations_x_gradients"}
    stored = cluster_layer(acts, "tiny", "conv2", params, tmp_path / "s.h5", "x", both)
    multiplied = cluster_layer(acts, "tiny", "conv2", params, tmp_path / "m.h5", "x", only)
    assert (stored["activations_x_gradients"], multiplied["activations_x_gradients"]) == (
        "stored",
        "multiplied",
    )
    with h5py.File(tmp_path / "s.h5", "r") as s, h5py.File(tmp_path / "m.h5", "r") as m:
        np.testing.assert_array_equal(s["labels"][()], m["labels"][()])
        np.testing.assert_allclose(s["centroids"][()], m["centroids"][()], rtol=1e-5, atol=1e-9)


def test_gradients_block_round_trips_in_canonical_form():
    for block in (
        {},
        {"target": {"label": "digit", "classes": {"b": 2, "a": 1}}, "store": ["gradient"]},
        {"target": {"index": 3}, "batch_size": 8},
        {"target": {"loss": "digit"}, "store": ["activation_x_gradient", "gradient"]},
    ):
        options = GradientOptions.from_config(block)
        again = GradientOptions.from_config(options.to_config())
        assert again == options and again.to_config() == options.to_config()
    assert GradientOptions.from_config({}).to_config() == {
        "store": ["gradient", "activation_x_gradient"],
        "target": "predicted",
    }


def test_the_settings_module_imports_neither_torch_nor_numpy():
    """The workflow parses gradients blocks at parse time, without the heavy libraries."""
    import subprocess
    import sys

    code = (
        "import sys; import actpipe.gradients.settings; "
        "print(sorted(m for m in ('torch', 'numpy', 'h5py') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_layers_going_by_another_name_are_stored_under_it(tmp_path):
    folder = labelled_folder(tmp_path, ["0", "1", "2"])
    spec = tiny_spec(
        [{"name": "conv2", "as": "second/conv", "reduce": "flatten"}],
        name="tests.helpers.models:small_net",
    )
    out = compute_gradients(spec, folder, tmp_path / "g.h5", options(n_replicates=1))
    with h5py.File(out, "r") as f:
        (key,) = f["tiny/gradient"].keys()
        assert key == "second~2Fconv"
        dataset = f["tiny/activation_x_gradient"][key]
        assert dataset.attrs["name"] == "second/conv" and dataset.attrs["module"] == "conv2"
    from actpipe.storage.reader import read_layer

    assert read_layer(out, "tiny", "second/conv").shape == (3, 1, 6 * 8 * 8)
