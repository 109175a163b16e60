"""ONNX graphs as exporters write them: default tensor names, fixed batch axes, external data,
tf2onnx-style names, channels-last inputs; onnxruntime features against torch's.

Every file is made by torch's own exporter (see ``tests.helpers.onnx_exports.EXPORTER``),
never by actpipe's ``export_onnx``.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from actpipe.extraction import OnnxCapture
from actpipe.models import ModelError, ModelSpec, check_model
from actpipe.models.onnx import (
    free_batch_agrees,
    instrument,
    load_graph,
    open_session,
    tensor_shapes,
)
from actpipe.models.onnx_batch import Unsafe, batch_free_proof, iter_pieces
from actpipe.models.onnx_files import external_data_files, onnx_checksum
from actpipe.models.onnx_input import image_input
from tests.helpers.onnx_exports import (
    ChannelsLast,
    Classifier,
    TokenNet,
    export_default,
    rename_tf2onnx_style,
    save_external,
)

SIZE = 16


def spec_for(path, layers, name="exported", **extra) -> ModelSpec:
    block = {
        "source": "onnx",
        "path": str(path),
        "layers": layers,
        "preprocess": {"preset": "none", "size": SIZE, "resize": SIZE},
        "batch_size": 7,
    }
    block.update(extra)
    return ModelSpec.from_config(name, block)


def module_of(tensor: str) -> str:
    """The torch module a TorchScript-exporter tensor name belongs to:
    ``/features/features.2/Relu_output_0`` -> ``features.2``."""
    return tensor.split("/")[-2]


def exporter_layers(path, ops=("Relu", "MaxPool", "Gelu", "LayerNormalization", "Conv")):
    """Tensor names (as exported) of the nodes of type ``ops`` inside a module scope, and the
    graph's output (the head)."""
    graph = onnx.load(str(path), load_external_data=False)
    named = [
        n.output[0]
        for n in graph.graph.node
        if n.op_type in ops and n.output[0].count("/") >= 2 and "features.0" not in n.output[0]
    ]
    return named, graph.graph.output[0].name


def torch_features(model: nn.Module, x: torch.Tensor, modules: list[str]) -> dict[str, np.ndarray]:
    """Each module's output on ``x``, flattened per image (forward hooks)."""
    seen: dict[str, torch.Tensor] = {}
    lookup = dict(model.named_modules())
    handles = [
        lookup[name].register_forward_hook(
            lambda _m, _i, out, name=name: seen.__setitem__(name, out)
        )
        for name in modules
    ]
    with torch.no_grad():
        logits = model.eval()(x)
    for handle in handles:
        handle.remove()
    out = {name: seen[name].flatten(1).numpy() for name in modules}
    out[""] = logits.numpy()
    return out


def make_model(kind: str) -> tuple[nn.Module, str]:
    torch.manual_seed(0)
    if kind == "classifier":
        model = Classifier(size=SIZE)
        with torch.no_grad():  # a trained-looking BatchNorm, folded into the conv on export
            model.features[1].running_mean.uniform_(-0.5, 0.5)
            model.features[1].running_var.uniform_(0.5, 2.0)
        return model.eval(), "fc"
    return TokenNet().eval(), "head"


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """{(kind, batch, external): (torch model, head module, .onnx path)}."""
    root = tmp_path_factory.mktemp("exports")
    out = {}
    for kind in ("classifier", "tokens"):
        for batch in (1, 4):
            model, head = make_model(kind)
            plain = export_default(
                model, root / f"{kind}_b{batch}.onnx", torch.zeros(batch, 3, SIZE, SIZE)
            )
            out[(kind, batch, False)] = (model, head, plain)
            folder = root / f"{kind}_b{batch}_external"
            folder.mkdir()
            external = save_external(plain, folder / "model.onnx", size_threshold=0)
            out[(kind, batch, True)] = (model, head, external)
    return out


@pytest.mark.parametrize("external", [False, True], ids=["inline", "external-data"])
@pytest.mark.parametrize("batch", [1, 4], ids=["batch1", "batch4"])
@pytest.mark.parametrize("kind", ["classifier", "tokens"])
def test_fixed_batch_exports_give_torch_features(exports, tmp_path, kind, batch, external):
    model, head, path = exports[(kind, batch, external)]
    assert (len(external_data_files(load_graph(path, "t"))) > 0) == external
    layers, output = exporter_layers(path)
    assert layers and all(name.startswith("/") for name in layers)
    spec = spec_for(path, [*layers, output])
    # The early check no longer refuses a batch_size (7) that the graph's batch does not divide.
    assert check_model(spec)["input"]["shape"] == [batch, 3, SIZE, SIZE]
    capture = OnnxCapture(spec, tmp_path / "cache")
    # The classifier's batch axis is proved free; the token model's (Shape of the images,
    # a constant joined to them) is not, so it is fed in pieces of the graph's batch.
    assert capture.piece == (None if kind == "classifier" else batch)
    assert capture.describe()["piece"] == capture.piece
    x = torch.randn(7, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    want = torch_features(model, x, [module_of(name) for name in layers] + [head])
    got = capture.run(x)
    for name in layers:
        np.testing.assert_allclose(got[name].numpy(), want[module_of(name)], atol=1e-4)
    np.testing.assert_allclose(got[output].numpy(), want[head], atol=1e-4)
    # Buffers of the extraction loop's shape receive the same values.
    buffers = {n: torch.full((10, t.shape[1]), np.nan) for n, t in got.items()}
    again = capture.run(x, buffers)
    for name, values in again.items():
        assert values.data_ptr() == buffers[name].data_ptr()
        np.testing.assert_array_equal(values.numpy(), got[name].numpy())


def test_pieces_are_exact_and_padding_is_dropped(exports, tmp_path):
    """Fed in pieces of 4, every image's features equal those of the image run alone
    through the same graph (bit for bit: the padding never reaches the kept rows)."""
    _, _, path = exports[("tokens", 4, False)]
    layers, output = exporter_layers(path)
    capture = OnnxCapture(spec_for(path, [*layers, output]), tmp_path)
    assert capture.piece == 4
    x = torch.randn(6, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    whole = capture.run(x)
    for i in range(6):
        alone = capture.run(x[i : i + 1])
        for name in whole:
            np.testing.assert_array_equal(whole[name][i].numpy(), alone[name][0].numpy())
    pieces = list(iter_pieces(np.arange(10)[:, None], 4))
    assert [(start, rows, chunk.shape[0]) for start, rows, chunk in pieces] == [
        (0, 4, 4),
        (4, 4, 4),
        (8, 2, 4),
    ]
    assert pieces[-1][2][:, 0].tolist() == [8, 9, 9, 9]


def test_freed_copy_rewrites_the_baked_reshape(exports, tmp_path):
    _, _, path = exports[("classifier", 4, False)]
    graph = load_graph(path, "t")
    reshape = next(n for n in graph.graph.node if n.op_type == "Reshape")
    proof = batch_free_proof(graph, image_input(graph, "t"))
    assert list(proof.reshapes.values()) == [[0, -1]]
    copy = instrument(spec_for(path, [reshape.output[0]]), [reshape.output[0]], tmp_path)
    freed = onnx.load(str(copy))
    assert freed.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert len(freed.graph.output) == 2
    # The source file is untouched.
    assert onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4


class Mixing(nn.Module):
    """Subtracts the batch mean: each image's output depends on the others."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x - x.mean(0, keepdim=True)).flatten(1)


def test_a_graph_mixing_images_is_never_freed(tmp_path):
    path = export_default(Mixing(), tmp_path / "mixing.onnx", torch.zeros(4, 3, SIZE, SIZE))
    graph = load_graph(path, "t")
    graph_input = image_input(graph, "t")
    with pytest.raises(Unsafe, match="batch axis"):
        batch_free_proof(graph, graph_input)
    # The numerical check that backs a proof sees the difference too.
    free = onnx.ModelProto()
    free.CopyFrom(graph)
    for value in [*free.graph.input, *free.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    assert not free_batch_agrees(open_session(free.SerializeToString()), graph_input, SIZE)
    capture = OnnxCapture(spec_for(path, [graph.graph.output[0].name]), tmp_path)
    assert capture.piece == 4


def test_tf2onnx_style_names_with_colons(exports, tmp_path):
    model, head, path = exports[("classifier", 1, False)]
    renamed = tmp_path / "tf_style.onnx"
    mapping = rename_tf2onnx_style(path, renamed)
    layers, output = exporter_layers(path)
    names = [mapping[n] for n in layers]
    assert names[0] == "model/features/features.2/Relu:0"
    capture = OnnxCapture(spec_for(renamed, [*names, mapping[output]]), tmp_path)
    x = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    want = torch_features(model, x, [module_of(n) for n in layers] + [head])
    got = capture.run(x)
    for old, new in zip(layers, names, strict=True):
        np.testing.assert_allclose(got[new].numpy(), want[module_of(old)], atol=1e-4)
    np.testing.assert_allclose(got[mapping[output]].numpy(), want[head], atol=1e-4)
    shapes = tensor_shapes(renamed, SIZE, names)
    assert shapes[names[0]] == (8, SIZE, SIZE)


def test_nhwc_graph_needs_input_layout_and_then_matches_torch(tmp_path):
    inner, _ = make_model("classifier")
    example = torch.zeros(1, SIZE, SIZE, 3)
    path = export_default(ChannelsLast(inner), tmp_path / "nhwc.onnx", example)
    graph = load_graph(path, "t")
    input_name = graph.graph.input[0].name
    relu = next(n.output[0] for n in graph.graph.node if n.op_type == "Relu")
    with pytest.raises(
        ModelError,
        match=rf"model 'exported'.*input '{input_name}'.*\[1, {SIZE}, {SIZE}, 3\].*"
        "input_layout: nhwc",
    ):
        check_model(spec_for(path, [relu]))
    spec = spec_for(path, [relu], input_layout="nhwc")
    assert check_model(spec)["input"]["layout"] == "nhwc"
    assert spec.describe()["input_layout"] == "nhwc"
    capture = OnnxCapture(spec, tmp_path)
    x = torch.randn(5, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(4))
    want = torch_features(inner, x, [module_of(relu)])
    np.testing.assert_allclose(capture.run(x)[relu].numpy(), want[module_of(relu)], atol=1e-4)
    # An NCHW graph declared nhwc is refused the other way round.
    plain = export_default(inner, tmp_path / "nchw.onnx", torch.zeros(1, 3, SIZE, SIZE))
    with pytest.raises(ModelError, match="channels first.*remove that key"):
        check_model(spec_for(plain, "auto", input_layout="nhwc"))


def test_input_layout_is_for_onnx_models_only():
    with pytest.raises(ModelError, match="input_layout: nhwc.*onnx models only"):
        ModelSpec.from_config(
            "r",
            {"source": "torchvision", "name": "resnet18", "layers": "auto", "input_layout": "nhwc"},
        )
    with pytest.raises(ModelError, match="input_layout must be one of"):
        ModelSpec.from_config(
            "o", {"source": "onnx", "path": "x.onnx", "layers": "auto", "input_layout": "chw"}
        )


class TwoInputs(nn.Module):
    def forward(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return torch.relu(x * scale)


class Bytes(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x.float() / 255.0 - 0.5)


class Rank3(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)


class Gray(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@pytest.mark.parametrize(
    "module, example, message",
    [
        (
            TwoInputs(),
            (torch.zeros(1, 3, SIZE, SIZE), torch.ones(1)),
            r"2 inputs \('[^']+' \(float32 \[1, 3, 16, 16\]\), '[^']+' \(float32 \[1\]\)\)"
            ".*only input",
        ),
        (
            Bytes(),
            torch.zeros(1, 3, SIZE, SIZE, dtype=torch.uint8),
            r"input '[^']+' is uint8 of shape \[1, 3, 16, 16\].*float32 image input",
        ),
        (Rank3(), torch.zeros(1, SIZE, SIZE), r"input '[^']+' has shape \[1, 16, 16\] \(rank 3\)"),
        (Gray(), torch.zeros(1, 1, SIZE, SIZE), r"\[1, 1, 16, 16\]: 1 channels.*RGB"),
    ],
    ids=["several-inputs", "uint8", "rank3", "one-channel"],
)
def test_inputs_actpipe_cannot_feed_are_named_by_the_early_check(
    tmp_path, module, example, message
):
    path = export_default(module, tmp_path / "m.onnx", example)
    with pytest.raises(ModelError, match=rf"model 'exported': .*{message}"):
        check_model(spec_for(path, "auto" if isinstance(module, Gray) else [_first(path)]))


def _first(path) -> str:
    return onnx.load(str(path)).graph.node[-1].output[0]


def test_fixed_spatial_size_names_the_preprocess_setting(exports):
    _, _, path = exports[("classifier", 1, False)]
    with pytest.raises(
        ModelError,
        match=r"input 'input.1' has shape \[1, 3, 16, 16\]: it takes 16x16 images but "
        r"preprocessing gives 224x224; set 'preprocess: \{size: 16, resize: 18\}'",
    ):
        check_model(spec_for(path, "auto", preprocess="imagenet"))


def test_a_layer_without_the_batch_axis_is_refused(tmp_path):
    class Squeezed(nn.Module):
        def forward(self, x):
            return torch.relu(x).reshape(-1)

    path = export_default(Squeezed(), tmp_path / "s.onnx", torch.zeros(2, 3, SIZE, SIZE))
    with pytest.raises(ModelError, match=r"shape \[1536\], whose first axis is not the batch"):
        check_model(spec_for(path, [_first(path)]))


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_external_data_checksum_cache_and_moves(exports, tmp_path):
    model, head, original = exports[("classifier", 1, True)]
    folder = tmp_path / "model"
    shutil.copytree(original.parent, folder)
    path = folder / "model.onnx"
    data = folder / "model.onnx.data"
    layers, output = exporter_layers(path)
    spec = spec_for(path, [*layers, output])
    cache = tmp_path / "results" / "cache"
    capture = OnnxCapture(spec, cache)
    # The recorded checksum covers the .onnx file and its data, as `sha256sum ... | sha256sum`.
    lines = f"{sha256(path)}  model.onnx\n{sha256(data)}  model.onnx.data\n"
    assert capture.source_sha256 == hashlib.sha256(lines.encode()).hexdigest()
    assert capture.checksum.files == {"model.onnx": sha256(path), "model.onnx.data": sha256(data)}
    # The cached copy holds the structure only: the weights stay in the model's folder.
    assert capture.path.parent == cache
    assert capture.path.stat().st_size < data.stat().st_size
    assert not any(p.name.endswith(".data") for p in cache.iterdir())
    x = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    first = capture.run(x)
    capture.remove()
    # Moving the results folder and the model folder keeps the cached copy valid.
    moved_cache = tmp_path / "elsewhere" / "cache"
    shutil.move(str(tmp_path / "results"), str(tmp_path / "elsewhere"))
    moved_model = tmp_path / "moved_model"
    shutil.move(str(folder), str(moved_model))
    copy = moved_cache / capture.path.name
    mtime = copy.stat().st_mtime_ns
    again = OnnxCapture(spec_for(moved_model / "model.onnx", [*layers, output]), moved_cache)
    assert again.path == copy and copy.stat().st_mtime_ns == mtime
    for name, values in again.run(x).items():
        np.testing.assert_array_equal(values.numpy(), first[name].numpy())
    want = torch_features(model, x, [module_of(n) for n in layers] + [head])
    np.testing.assert_allclose(first[output].numpy(), want[head], atol=1e-4)
    # Changed weights in the data file: a new checksum, a new copy, other features.
    weights = bytearray((moved_model / "model.onnx.data").read_bytes())
    weights[:4] = np.float32(3.0).tobytes()
    (moved_model / "model.onnx.data").write_bytes(bytes(weights))
    changed = OnnxCapture(spec_for(moved_model / "model.onnx", [*layers, output]), moved_cache)
    assert changed.source_sha256 != capture.source_sha256 and changed.path != copy
    assert not np.allclose(changed.run(x)[output].numpy(), first[output].numpy())


def test_one_file_per_tensor_external_data(exports, tmp_path):
    """torch's exporter writes one file per tensor for models over 2 GB."""
    model, head, plain = exports[("classifier", 4, False)]
    path = save_external(
        plain, tmp_path / "big.onnx", all_tensors_to_one_file=False, size_threshold=0
    )
    files = external_data_files(load_graph(path, "t"))
    assert len(files) >= 4
    checksum = onnx_checksum(path, load_graph(path, "t"))
    assert set(checksum.files) == {"big.onnx", *files}
    _, output = exporter_layers(path)
    capture = OnnxCapture(spec_for(path, [output]), tmp_path / "cache")
    x = torch.randn(5, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(6))
    want = torch_features(model, x, [head])
    np.testing.assert_allclose(capture.run(x)[output].numpy(), want[head], atol=1e-4)


def test_missing_and_truncated_external_data(exports, tmp_path):
    _, _, original = exports[("classifier", 1, True)]
    folder = tmp_path / "m"
    shutil.copytree(original.parent, folder)
    path = folder / "model.onnx"
    data = folder / "model.onnx.data"
    spec = spec_for(path, "auto")
    content = data.read_bytes()
    data.write_bytes(content[: len(content) // 2])
    with pytest.raises(
        ModelError, match=r"model 'exported'.*model.onnx.data.*has \d+ bytes.*truncated"
    ):
        check_model(spec)
    data.unlink()
    with pytest.raises(
        ModelError,
        match=r"model 'exported'.*model.onnx.*external data file 'model.onnx.data', which is "
        "missing.*copy that file next to the .onnx file",
    ):
        check_model(spec)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\n", "Git LFS pointer"),
        (b"PK\x03\x04" + bytes(60), "zip archive"),
        (b"\x89HDF\r\n\x1a\n" + bytes(60), "HDF5 file"),
        (b"<!DOCTYPE html><html>Sign in</html>", "HTML or XML page"),
        (b"", "empty"),
    ],
    ids=["lfs", "zip", "hdf5", "html", "empty"],
)
def test_files_that_are_not_onnx_say_what_they_are(tmp_path, content, message):
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    match = rf"model 'exported': .*model.onnx.*is not an ONNX model: it is .*{message}"
    with pytest.raises(ModelError, match=match):
        check_model(spec_for(path, "auto"))


def test_a_folder_instead_of_the_file(tmp_path):
    with pytest.raises(ModelError, match=r"model 'exported': .* is a folder; point 'path:' at"):
        check_model(spec_for(tmp_path, "auto"))


def test_external_data_named_outside_the_model_folder(exports, tmp_path):
    _, _, original = exports[("classifier", 1, True)]
    graph = onnx.load(str(original), load_external_data=False)
    for tensor in graph.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../elsewhere/model.onnx.data"
    path = tmp_path / "escaping.onnx"
    path.write_bytes(graph.SerializeToString())
    with pytest.raises(ModelError, match=r"'../elsewhere/model.onnx.data', which is not a file"):
        check_model(spec_for(path, "auto"))


def test_non_square_fixed_size_is_refused(tmp_path):
    path = export_default(nn.Conv2d(3, 4, 3), tmp_path / "wide.onnx", torch.zeros(1, 3, 16, 20))
    with pytest.raises(ModelError, match=r"\[1, 3, 16, 20\]: 16x20 images.*square crops"):
        check_model(spec_for(path, "auto"))


def test_float16_input_gets_the_images_cast(exports, tmp_path):
    """A graph whose input is float16 (cast to float32 inside) is fed float16 images."""
    model, head, path = exports[("classifier", 1, False)]
    graph = onnx.load(str(path))
    old = graph.graph.input[0]
    graph.graph.node.insert(
        0, onnx.helper.make_node("Cast", ["image16"], [old.name], to=onnx.TensorProto.FLOAT)
    )
    graph.graph.input.insert(
        0,
        onnx.helper.make_tensor_value_info("image16", onnx.TensorProto.FLOAT16, [1, 3, SIZE, SIZE]),
    )
    graph.graph.input.remove(graph.graph.input[1])
    half = tmp_path / "half.onnx"
    onnx.save(graph, str(half))
    output = graph.graph.output[0].name
    capture = OnnxCapture(spec_for(half, [output]), tmp_path)
    assert capture.input.dtype == "float16"
    x = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(8))
    want = torch_features(model, x.half().float(), [head])
    np.testing.assert_allclose(capture.run(x)[output].numpy(), want[head], atol=1e-4)


def test_an_opset_onnxruntime_cannot_run_names_one_it_can(exports, tmp_path):
    import onnxruntime

    _, _, path = exports[("classifier", 1, False)]
    graph = onnx.load(str(path))
    graph.opset_import[0].version = 40
    future = tmp_path / "future.onnx"
    onnx.save(graph, str(future))
    with pytest.raises(
        ModelError,
        match=rf"model 'exported': .*future.onnx.* uses ONNX opset 40 .*onnxruntime "
        rf"{onnxruntime.__version__} cannot run.*opset_version=\d+",
    ):
        check_model(spec_for(future, "auto"))


def test_layers_cli_lists_exporter_names(exports, capsys):
    from actpipe.cli import main

    _, _, path = exports[("classifier", 1, True)]
    assert main(["layers", str(path), "--size", str(SIZE)]) == 0
    out = capsys.readouterr().out
    assert "/features/features.2/Relu_output_0" in out and "8x16x16" in out
    assert "input 'input.1' [1, 3, 16, 16]" in out


def jpeg_folder(root, n: int):
    from PIL import Image

    rng = np.random.default_rng(7)
    root.mkdir()
    for i in range(n):
        pixels = rng.integers(0, 256, (SIZE + 4 * (i % 3), SIZE + 2, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"img_{i:02d}.jpg", quality=90)
    return root


@pytest.mark.parametrize("kind", ["classifier", "tokens"])
def test_extract_activations_from_an_exported_graph_with_external_data(exports, tmp_path, kind):
    """The whole extraction: JPEGs, a fixed-batch-4 export with external data and the
    exporter's tensor names (``/features/features.2/Relu_output_0``), one of them also under
    a short name (``as:``), a batch_size (6 exposures) the graph's batch does not divide, two
    replicates with jitter. The file holds torch's features of the same exposures under the
    names as written, every layer inside ``/{model}/layers/``, and passes validation."""
    import h5py

    from actpipe import get_available_layers, read_layer
    from actpipe.extraction import ExtractionOptions, extract_activations
    from actpipe.names import layer_key
    from actpipe.preprocess import Jitter, expose, prepare_image
    from actpipe.stimuli import load_stimulus_folder
    from actpipe.storage.validate import validate_file

    model, head, path = exports[(kind, 4, True)]
    layers, output = exporter_layers(path)
    entries = [*layers, {"name": layers[0], "as": "first", "reduce": "mean"}, output]
    spec = spec_for(path, entries, batch_size=6)
    folder = jpeg_folder(tmp_path / "jpegs", 11)
    jitter = Jitter(translate=2, rotate=5)
    options = ExtractionOptions(n_replicates=2, jitter=jitter, progress=False)
    out = extract_activations(spec, folder, tmp_path / "acts.h5", options, "jpegs", tmp_path / "c")
    assert validate_file(out) == []
    stimuli = load_stimulus_folder(folder)
    exposures = torch.cat(
        [
            expose(prepare_image(p, spec.preprocess), sid, 2, options.jitter, spec.preprocess)[0]
            for sid, p in zip(stimuli.ids, stimuli.paths, strict=True)
        ]
    )
    want = torch_features(model, exposures, [module_of(n) for n in layers] + [head])
    names = [*layers, "first", output]
    assert get_available_layers(out, "exported") == names
    for name in layers:
        got = read_layer(out, "exported", name).reshape(22, -1)
        np.testing.assert_allclose(got, want[module_of(name)], atol=1e-4)
    channels = 8 if kind == "classifier" else 12
    pooled = want[module_of(layers[0])].reshape(22, channels, -1).mean(axis=2)
    first = read_layer(out, "exported", "first").reshape(22, -1)
    np.testing.assert_allclose(first, pooled, atol=1e-4)
    logits = read_layer(out, "exported", output).reshape(22, -1)
    np.testing.assert_allclose(logits, want[head], atol=1e-4)
    with h5py.File(out, "r") as f:
        assert sorted(f) == ["exported"]  # nothing written outside the model's group
        group = f["exported"]
        assert sorted(group["layers"]) == sorted(layer_key(n) for n in names)
        assert [s.decode() for s in group["stimulus_ids"][:]] == stimuli.ids
        weights = json.loads(group.attrs["weights"])
        runtime = json.loads(group.attrs["runtime"])
    assert set(weights["files"]) == {"model.onnx", "model.onnx.data"}
    assert runtime["input"]["shape"] == [4, 3, SIZE, SIZE]
    assert runtime["piece"] == (None if kind == "classifier" else 4)


def test_constants_and_tensors_without_batch_axis_are_not_layers(exports, capsys):
    from actpipe.cli import main

    _, _, path = exports[("tokens", 1, False)]
    with pytest.raises(ModelError, match=r"tensor 'head.weight' is a constant of the graph"):
        check_model(spec_for(path, ["head.weight"]))
    with pytest.raises(ModelError, match=r"layer tensor '/Shape_output_0' has shape \[4\]"):
        check_model(spec_for(path, ["/Shape_output_0"]))
    assert main(["layers", str(path), "--size", str(SIZE)]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert "(no batch axis)" in rows["/Shape_output_0"]
    assert "head.weight" not in rows


class Op(nn.Module):
    """One operation as a module, for exporting."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.weight = nn.Parameter(torch.randn(3, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self, x)


SAFE = {
    "softmax over channels": lambda m, x: x.softmax(1),
    "permute keeping axis 0": lambda m, x: x.permute(0, 2, 3, 1) @ m.weight,
    "unsqueeze after axis 0": lambda m, x: x.unsqueeze(1) * 2,
    "mean over space": lambda m, x: x.mean((2, 3)),
    "slice of channels": lambda m, x: x[:, 1:],
    "pad of space": lambda m, x: nn.functional.pad(x, (1, 1, 1, 1)),
    "view(x.size(0), -1)": lambda m, x: x.transpose(2, 3).reshape(x.size(0), -1),
    "upsample": lambda m, x: nn.functional.interpolate(x, scale_factor=2.0),
}
UNSAFE = {
    "softmax over the batch": lambda m, x: x.softmax(0),
    "permute moving axis 0": lambda m, x: x.permute(1, 0, 2, 3) + 1,
    "flatten from axis 0": lambda m, x: x.flatten(0) + 1,
    "concat along the batch": lambda m, x: torch.cat([x, x * 2], 0),
    "slice of the batch": lambda m, x: x[:1] + 1,
    "sum over the batch": lambda m, x: x.sum(0) + 1,
    "constant varying along the batch": lambda m, x: x + torch.arange(2.0).view(2, 1, 1, 1),
    "reshape(-1, 48) mixing images": lambda m, x: x.reshape(-1, 48) + 1,
}


@pytest.mark.parametrize("name", list(SAFE) + list(UNSAFE))
def test_batch_rules_op_by_op(tmp_path, name):
    """Each rule on a graph exported with a fixed batch of 2: safe ops are freed and give the
    torch module's outputs on any batch; batch-mixing ops are refused and fed in pieces."""
    safe = name in SAFE
    torch.manual_seed(0)
    module = Op(SAFE[name] if safe else UNSAFE[name]).eval()
    path = export_default(module, tmp_path / "op.onnx", torch.zeros(2, 3, SIZE, SIZE))
    graph = load_graph(path, "t")
    if safe:
        batch_free_proof(graph, image_input(graph, "t"))
    else:
        with pytest.raises(Unsafe):
            batch_free_proof(graph, image_input(graph, "t"))
    output = graph.graph.output[0].name
    capture = OnnxCapture(spec_for(path, [output]), tmp_path)
    assert capture.piece == (None if safe else 2)
    if safe:
        x = torch.randn(5, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(9))
        with torch.no_grad():
            want = module(x).flatten(1).numpy()
        np.testing.assert_allclose(capture.run(x)[output].numpy(), want, atol=1e-5)
