"""ONNX models: loading and checking graphs, intermediate tensors as layers, sessions, export.

The configured layers of an ``onnx`` model are names of tensors in its graph, exactly as the
exporter wrote them (``/features/features.3/Relu_output_0``, ``model/conv2d/Relu:0``). actpipe
copies the graph with those tensors added as graph outputs (the *instrumented* model), caches
the copy under a name keyed by the model's checksum and the layer list, and opens it with
onnxruntime (CUDA provider when present and asked for, CPU otherwise);
:class:`actpipe.extraction.onnx_capture.OnnxCapture` runs it.

Graphs whose tensors live in external data files (:mod:`.onnx_files`) are read without that
data wherever only the structure is needed; their instrumented copy holds the structure only
and is opened with the model's own folder as the place of its data, so the cache stays small,
survives moving the results folder and is shared by concurrent jobs. The image input is
described and checked by :mod:`.onnx_input`; a fixed batch axis is handled by the capture
(pieces of the graph's batch) or, where :mod:`.onnx_batch` proves it safe, made free.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._io import atomic_output, sha256_file
from ..errors import ModelError
from ..names import no_such
from .onnx_batch import BATCH_RULES_VERSION, SMALL_VALUES, free_batch_axis, iter_pieces
from .onnx_files import check_external_data, external_data_files
from .onnx_input import GraphInput, check_input_size, image_input, shape_text, value_shape

if TYPE_CHECKING:
    from .spec import ModelSpec

log = logging.getLogger(__name__)

AUTO_OPS = ("Conv", "Gemm", "MatMul")
INSTRUMENTED_SUFFIX = ".instrumented.onnx"
EXTERNAL_FOLDER_OPTION = "session.model_external_initializers_file_folder_path"

_FILE_KINDS = (
    (b"version https://git-lfs", "a Git LFS pointer, not the model itself; run `git lfs pull`"),
    (b"PK\x03\x04", "a zip archive (a torch checkpoint?); export the model with torch.onnx.export"),
    (b"\x89HDF", "an HDF5 file (a Keras model?); convert it to ONNX first, e.g. with tf2onnx"),
    (b"<", "an HTML or XML page (a failed download?); download the .onnx file again"),
)


def _not_onnx(path: Path, where: str, detail: str) -> ModelError:
    with open(path, "rb") as fh:
        head = fh.read(64)
    kind = next((text for magic, text in _FILE_KINDS if head.lstrip().startswith(magic)), None)
    if not head:
        kind = "empty"
    if kind:
        return ModelError(f"{where}: {str(path)!r} is not an ONNX model: it is {kind}")
    return ModelError(
        f"{where}: {str(path)!r} is not a valid ONNX model ({detail[:300]}); re-export it "
        "(torch.onnx.export) or point 'path:' at the .onnx file"
    )


def _runtime_message(exc: Exception) -> str:
    """onnxruntime's message without its source location and C++ signature."""
    text = str(exc).strip()
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    return re.sub(r"^\S+:\d+ .*?\)\s+(?=[A-Z])", "", text, count=1)


def _runtime_refuses(model: Any, opset: int | None = None) -> str | None:
    """Why onnxruntime would refuse a graph with ``model``'s IR version and opset imports
    (``opset``: try that default-domain opset instead), or ``None``; probed on a one-node
    graph, so no weights are read."""
    import onnx
    import onnxruntime

    value = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    out = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])], "probe", [value], [out]
    )
    imports = [
        onnx.helper.make_opsetid(
            o.domain, opset if opset is not None and o.domain in ("", "ai.onnx") else o.version
        )
        for o in model.opset_import
    ]
    probe = onnx.helper.make_model(graph, opset_imports=imports)
    probe.ir_version = model.ir_version
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    try:
        onnxruntime.InferenceSession(
            probe.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        return _runtime_message(exc)
    return None


def check_runtime_support(model: Any, path: str | os.PathLike[str], where: str) -> None:
    """Raise :class:`ModelError` when onnxruntime cannot run graphs of ``model``'s IR version
    or opset, saying which opset to export with instead."""
    import onnxruntime

    problem = _runtime_refuses(model)
    if problem is None:
        return
    default = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    hint = "re-export it with an older exporter or upgrade onnxruntime"
    if default is not None and "opset" in problem.lower():
        low, high = 7, default - 1
        best = None
        while low <= high:
            middle = (low + high) // 2
            if _runtime_refuses(model, middle) is None:
                best, low = middle, middle + 1
            else:
                high = middle - 1
        if best is not None:
            hint = (
                f"re-export it with opset_version={best} (torch.onnx.export(..., "
                f"opset_version={best})) or convert it with "
                f"onnx.version_converter.convert_version(model, {best})"
            )
    raise ModelError(
        f"{where}: {str(path)!r} uses ONNX opset {default} (IR version {model.ir_version}), "
        f"which onnxruntime {onnxruntime.__version__} cannot run: {problem[:300]}; {hint}"
    )


def load_graph(path: str | os.PathLike[str], where: str) -> Any:
    """Parse and check an .onnx file, without reading its external data.

    Checks, each with a :class:`ModelError` naming ``where`` (the model entry), the file and
    what to do: the file exists and is an ONNX model (recognising Git LFS pointers, torch
    checkpoints, HTML pages), its external data files are present and long enough,
    onnxruntime supports its opset and IR version, and ``onnx.checker`` accepts it.
    """
    import onnx

    path = Path(path)
    if not path.exists():
        raise ModelError(
            f"{where}: ONNX file {str(path)!r} does not exist; fix 'path:' in its block"
        )
    if path.is_dir():
        raise ModelError(
            f"{where}: {str(path)!r} is a folder; point 'path:' at the .onnx file inside it"
        )
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise _not_onnx(path, where, f"{type(exc).__name__}: {exc}") from exc
    if not model.graph.node or not model.opset_import:
        raise _not_onnx(path, where, "no graph nodes or opset")
    check_external_data(model, path, where)
    check_runtime_support(model, path, where)
    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:
        raise _not_onnx(path, where, f"{type(exc).__name__}: {exc}") from exc
    return model


def has_external_data(model: Any) -> bool:
    """Whether some tensor of ``model`` lives in an external data file."""
    return bool(external_data_files(model))


def tensor_names(model: Any) -> list[str]:
    """Every tensor computed from the graph's input, in node (topological) order: the
    tensors that can be layers (constants such as weights passed through ``Identity`` nodes
    are left out)."""
    initializers = {t.name for t in model.graph.initializer}
    dependent = {i.name for i in model.graph.input if i.name not in initializers}
    names: list[str] = []
    for node in model.graph.node:
        if any(name in dependent for name in node.input):
            outputs = [n for n in node.output if n]
            dependent.update(outputs)
            names.extend(outputs)
    return names


def auto_tensor_names(model: Any) -> list[str]:
    """The default layers of an ONNX graph: the output of every Conv, Gemm and MatMul node."""
    return [
        node.output[0]
        for node in model.graph.node
        if node.op_type in AUTO_OPS and node.output and node.output[0]
    ]


def check_tensor_names(model: Any, names: Sequence[str], where: str) -> None:
    """Raise :class:`ModelError` (with close names) for a name that is not a tensor computed
    from the input (or the input itself); constants of the graph are named as such."""
    available = tensor_names(model)
    known = set(available) | {i.name for i in model.graph.input}
    constants = {n for node in model.graph.node for n in node.output} | {
        t.name for t in model.graph.initializer
    }
    for name in names:
        if name not in known and name in constants:
            raise ModelError(
                f"{where}: tensor {name!r} is a constant of the graph (it does not depend on "
                "the image); choose a tensor computed from the input (`actpipe layers` lists them)"
            )
        if name not in known:
            raise ModelError(
                no_such(
                    "tensor",
                    name,
                    available,
                    where,
                    "run `actpipe layers` on the model to list them all",
                )
            )


def resolve_onnx_layers(spec: ModelSpec, model: Any) -> list[str]:
    if spec.auto_layers:
        names = auto_tensor_names(model)
        if not names:
            raise ModelError(
                f"model {spec.name!r}: 'layers: auto' found no Conv/Gemm/MatMul node; list "
                "the tensors to take under 'layers:'"
            )
        return names
    return [layer.module for layer in spec.layers]


def inferred_shapes(model: Any) -> dict[str, tuple[int | str, ...] | None]:
    """Declared or inferred shape of every value of the graph (ONNX shape inference on the
    structure; empty when inference fails)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(structure_only(model))
    except Exception:  # shapes are a help for messages, never a requirement
        return {}
    values = [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]
    return {v.name: value_shape(v) for v in values}


def check_batch_axis(
    model: Any, layers: Sequence[str], graph_input: GraphInput, where: str
) -> None:
    """Every layer tensor must keep the batch as its first axis: refuse tensors whose
    inferred first axis is a fixed size other than the graph's fixed batch, and scalars."""
    batch = graph_input.fixed_batch
    shapes = inferred_shapes(model)
    for name in layers:
        shape = shapes.get(name)
        if shape is None:
            continue
        wrong = not shape or (batch is not None and isinstance(shape[0], int) and shape[0] != batch)
        if wrong:
            raise ModelError(
                f"{where}: layer tensor {name!r} has shape {shape_text(shape)}, whose first "
                f"axis is not the batch axis of input {graph_input.name!r} "
                f"{shape_text(graph_input.shape)}; choose a tensor that keeps one row per image "
                "(`actpipe layers` lists them with their shapes)"
            )


def check_onnx(spec: ModelSpec) -> dict[str, Any]:
    """Everything about an onnx block that can be checked before any job runs (see
    ``check.check_model``): the file (and its external data, without reading it), tensor
    names, the image input (count, type, rank, layout, size) and the layers' batch axis."""
    where = f"model {spec.name!r}"
    model = load_graph(spec.arch, where)
    layers = resolve_onnx_layers(spec, model)
    check_tensor_names(model, layers, where)
    graph_input = image_input(model, where, spec.input_layout)
    check_input_size(spec, graph_input)
    check_batch_axis(model, layers, graph_input, where)
    return {
        "source": "onnx",
        "path": str(Path(spec.arch).resolve()),
        "layers": layers if spec.auto_layers else spec.layer_names,
        "input": graph_input.describe(),
    }


def instrumented_path(
    source: str | os.PathLike[str],
    layers: Sequence[str],
    cache_dir: str | os.PathLike[str] | None,
    source_sha256: str | None = None,
) -> Path:
    """Where the instrumented copy of ``source`` with ``layers`` as outputs is cached
    (``source_sha256``: the model's checksum, see :func:`.onnx_files.onnx_checksum`; the
    .onnx file's own sha256 when not given)."""
    import onnx

    source = Path(source)
    digest = source_sha256 or sha256_file(source)
    key = hashlib.sha256(
        json.dumps(
            {
                "sha256": digest,
                "layers": list(layers),
                "onnx": onnx.__version__,
                "batch_rules": BATCH_RULES_VERSION,
            }
        ).encode()
    ).hexdigest()[:16]
    folder = Path(cache_dir) if cache_dir is not None else source.parent
    return folder / f"{source.stem}.{key}{INSTRUMENTED_SUFFIX}"


def instrument(
    spec: ModelSpec,
    layers: Sequence[str],
    cache_dir: str | os.PathLike[str] | None = None,
    source_sha256: str | None = None,
    graph: Any = None,
) -> Path:
    """The instrumented model of ``spec`` (built once, then reused from the cache).

    ``cache_dir`` defaults to the folder of the .onnx file; ``graph`` is the parsed model when
    the caller has it (it is not changed). The copy carries the same tensors as the source:
    inline ones inline, external ones as references to the source's data files (relative to
    the source's folder: open it with :func:`open_session`'s ``data_dir``). When
    :func:`.onnx_batch.free_batch_axis` proves a fixed batch axis safe to free, the copy's is
    free. The copy is written atomically, so concurrent jobs building the same copy never
    see a partial file.
    """
    where = f"model {spec.name!r}"
    target = instrumented_path(spec.arch, layers, cache_dir, source_sha256)
    if target.is_file():
        return target
    source = graph if graph is not None else load_graph(spec.arch, where)
    check_tensor_names(source, layers, where)
    model = structure_only(source)
    add_outputs(model, layers)
    graph_input = image_input(model, where, spec.input_layout)
    if graph_input.fixed_batch is not None:
        data_dir = Path(spec.arch).parent if has_external_data(source) else None
        freed = free_batch_axis(model, graph_input, data_dir)
        if freed is not None:
            log.info("%s: the graph's fixed batch axis is free in the copy (%s)", where, freed)
    with_payloads(model, source)
    with atomic_output(target) as tmp:
        tmp.write_bytes(model.SerializeToString())
    log.info("%s: instrumented ONNX model with %d layer outputs: %s", where, len(layers), target)
    return target


STUB_LOCATION = "actpipe:structure-only"


def structure_only(model: Any) -> Any:
    """A copy of ``model`` without the data of its large inline initializers (they become
    stubs with their name, type and dims), so shape inference and graph edits do not copy
    the weights. :func:`with_payloads` puts the data back."""
    import onnx

    light = onnx.ModelProto()
    for descriptor, value in model.ListFields():
        if descriptor.name != "graph":
            _copy_field(light, descriptor, value)
    for descriptor, value in model.graph.ListFields():
        if descriptor.name != "initializer":
            _copy_field(light.graph, descriptor, value)
    for tensor in model.graph.initializer:
        stub = light.graph.initializer.add()
        if tensor.data_location == onnx.TensorProto.EXTERNAL or (
            np.prod(tensor.dims, dtype=np.int64) <= SMALL_VALUES
        ):
            stub.CopyFrom(tensor)
            continue
        stub.name = tensor.name
        stub.data_type = tensor.data_type
        stub.dims.extend(tensor.dims)
        stub.data_location = onnx.TensorProto.EXTERNAL
        entry = stub.external_data.add()
        entry.key, entry.value = "location", STUB_LOCATION
    return light


def _copy_field(target: Any, descriptor: Any, value: Any) -> None:
    if isinstance(value, (str, bytes, int, float)):
        setattr(target, descriptor.name, value)
    elif hasattr(value, "__len__"):  # a repeated field
        getattr(target, descriptor.name).extend(value)
    else:
        getattr(target, descriptor.name).CopyFrom(value)


def with_payloads(light: Any, source: Any) -> None:
    """Put the data of ``source``'s initializers back into the stubs of ``light`` (made by
    :func:`structure_only` from ``source``; initializers appended since are kept)."""
    for index, tensor in enumerate(source.graph.initializer):
        stub = light.graph.initializer[index]
        if any(e.key == "location" and e.value == STUB_LOCATION for e in stub.external_data):
            stub.CopyFrom(tensor)


def free_batch_agrees(session: Any, graph_input: GraphInput, side: int) -> bool:
    """For a session of a copy whose fixed batch ``N`` was freed: whether one seeded random
    batch of ``N + 1`` images, run whole, gives the outputs of its pieces of ``N`` run one at
    a time (rtol 1e-4). At ``N`` images the copy computes exactly what the source graph does,
    so this is the numerical check backing :func:`.onnx_batch.batch_free_proof`."""
    piece = graph_input.fixed_batch or 1
    rng = np.random.default_rng(0)
    images = rng.standard_normal(graph_input.feed_shape(piece + 1, side))
    images = images.astype(graph_input.dtype)
    names = [o.name for o in session.get_outputs()]
    parts: list[list[np.ndarray]] = [[] for _ in names]
    try:
        for _, rows, chunk in iter_pieces(images, piece):
            outputs = session.run(names, {graph_input.name: chunk})
            for part, out in zip(parts, outputs, strict=True):
                part.append(np.asarray(out)[:rows])
        whole = session.run(names, {graph_input.name: images})
    except Exception as exc:  # any failure of the freed graph means: keep the batch fixed
        log.warning("the graph with a free batch axis fails on %d images: %s", piece + 1, exc)
        return False
    for part, have in zip(parts, whole, strict=True):
        want, have = np.concatenate(part), np.asarray(have)
        if have.shape != want.shape:
            return False
        scale = float(np.max(np.abs(want), initial=0.0, where=np.isfinite(want)))
        if not np.allclose(have, want, rtol=1e-4, atol=1e-5 * max(scale, 1.0), equal_nan=True):
            return False
    return True


def add_outputs(model: Any, names: Sequence[str]) -> None:
    """Make the tensors ``names`` outputs of the graph (types from shape inference)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    infos = {
        v.name: v
        for v in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]
    }
    existing = {o.name for o in model.graph.output}
    for name in names:
        if name in existing:
            continue
        if name in infos:
            model.graph.output.append(infos[name])
        else:
            model.graph.output.append(
                onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
            )


def providers(device: str) -> list[str]:
    """onnxruntime providers for a torch device string: CUDA first when asked and present."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if device.startswith("cuda") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def open_session(
    model: str | os.PathLike[str] | bytes,
    device: str = "cpu",
    threads: int | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    where: str = "",
) -> Any:
    """An onnxruntime session of the .onnx file (or serialized graph) ``model``.

    ``data_dir``: the folder that the graph's external data locations are relative to (the
    source model's folder, for an instrumented copy kept elsewhere). Failures are a
    :class:`ModelError` naming ``where`` and the file.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    source: str | bytes
    if data_dir is not None:
        options.add_session_config_entry(EXTERNAL_FOLDER_OPTION, str(Path(data_dir).resolve()))
        source = model if isinstance(model, bytes) else Path(model).read_bytes()
    else:
        source = model if isinstance(model, bytes) else str(model)
    provider_list = providers(device)
    provider_options: list[dict[str, Any]] = []
    for name in provider_list:
        if name == "CUDAExecutionProvider" and ":" in device:
            provider_options.append({"device_id": int(device.split(":", 1)[1])})
        else:
            provider_options.append({})
    try:
        return onnxruntime.InferenceSession(
            source, options, providers=provider_list, provider_options=provider_options
        )
    except Exception as exc:
        shown = "the graph" if isinstance(model, bytes) else repr(str(model))
        raise ModelError(
            f"{where + ': ' if where else ''}onnxruntime {onnxruntime.__version__} cannot open "
            f"{shown}: {_runtime_message(exc)[:500]}"
        ) from exc


def tensor_shapes(
    path: str | os.PathLike[str],
    size: int | None,
    names: Sequence[str] | None = None,
    layout: str = "nchw",
) -> dict[str, tuple[int, ...] | None]:
    """Output shape (without the batch axis) of every tensor computed from the input, or of
    ``names``, on one dummy image (a piece of the graph's fixed batch, if it has one);
    ``None`` for a tensor whose first axis is not that batch (``Shape`` outputs, stacked
    query/key/value, scalars)."""
    where = f"ONNX file {str(path)!r}"
    model = load_graph(path, where)
    wanted = list(names) if names is not None else tensor_names(model)
    graph_input = image_input(model, where, layout)
    height, _ = graph_input.spatial
    side = height if isinstance(height, int) and height > 0 else size or 224
    batch = graph_input.fixed_batch or 1
    dummy = np.zeros(graph_input.feed_shape(batch, side))
    add_outputs(model, wanted)
    data_dir = Path(path).parent if has_external_data(model) else None
    session = open_session(model.SerializeToString(), data_dir=data_dir, where=where)
    outputs = session.run(wanted, {graph_input.name: dummy.astype(graph_input.dtype)})
    return {
        name: tuple(int(s) for s in np.shape(out)[1:])
        if np.ndim(out) and np.shape(out)[0] == batch
        else None
        for name, out in zip(wanted, outputs, strict=True)
    }


def export_onnx(
    model: Any,
    path: str | os.PathLike[str],
    input_size: int,
    layers: Sequence[str] = (),
    opset: int = 17,
) -> Path:
    """Export a torch module to ONNX with the outputs of ``layers`` as *named* tensors.

    The module's outputs for ``layers`` are given the module names as tensor names and then
    removed from the graph outputs again: the file's only output is ``logits``, and its
    intermediate tensors carry the torch module names, so the same layer names select the
    same activations through torch and through onnxruntime. The batch axis is dynamic.
    """
    import onnx
    import torch

    modules = dict(model.named_modules())
    missing = [name for name in layers if name not in modules]
    if missing:
        raise ModelError(f"cannot name tensors of missing module(s) {missing}")

    class _Named(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model
            self.seen: dict[str, torch.Tensor] = {}

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            self.seen = {}
            logits = self.inner(x)
            return (logits, *[self.seen[name] for name in layers])

    wrapper = _Named().eval()
    handles = [
        modules[name].register_forward_hook(
            lambda _m, _i, out, name=name: wrapper.seen.__setitem__(name, out)
        )
        for name in layers
    ]
    dummy = torch.zeros(2, 3, input_size, input_size)
    path = Path(path)
    try:
        with atomic_output(path) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                (dummy,),
                str(tmp),
                input_names=["input"],
                output_names=["logits", *layers],
                dynamic_axes={"input": {0: "batch"}},
                opset_version=opset,
                dynamo=False,
                do_constant_folding=True,
            )
            graph = onnx.load(str(tmp))
            keep = [o for o in graph.graph.output if o.name not in set(layers)]
            moved = [o for o in graph.graph.output if o.name in set(layers)]
            del graph.graph.output[:]
            graph.graph.output.extend(keep)
            graph.graph.value_info.extend(moved)
            onnx.checker.check_model(graph)
            onnx.save(graph, str(tmp))
    finally:
        for handle in handles:
            handle.remove()
    return path
