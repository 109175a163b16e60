"""ONNX models: intermediate tensors as layers, run with onnxruntime.

The configured layers of an ``onnx`` model are names of tensors in its graph. actpipe copies
the graph with those tensors added as graph outputs (the *instrumented* model), caches the
copy under a name keyed by the source file's sha256 and the layer list, and opens it with
onnxruntime (CUDA provider when present and asked for, CPU otherwise);
:class:`actpipe.extraction.onnx_capture.OnnxCapture` runs it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._io import atomic_output, sha256_file
from ..errors import ModelError
from ..names import no_such

if TYPE_CHECKING:
    from .spec import ModelSpec

log = logging.getLogger(__name__)

AUTO_OPS = ("Conv", "Gemm", "MatMul")
INSTRUMENTED_SUFFIX = ".instrumented.onnx"


def load_graph(path: str | os.PathLike[str], where: str) -> Any:
    """Parse an .onnx file (and check it), raising :class:`ModelError` naming the entry."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ModelError(
            f"{where}: ONNX file {str(path)!r} does not exist; fix 'path:' in its block"
        )
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ModelError(
            f"{where}: {str(path)!r} is not a valid ONNX model ({type(exc).__name__}: "
            f"{str(exc)[:300]}); re-export it (torch.onnx.export) or point 'path:' at the "
            ".onnx file"
        ) from exc
    return model


def graph_input(model: Any) -> tuple[str, list[int | str]]:
    """Name and shape (ints, or names of symbolic dims) of the image input."""
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if not inputs:
        raise ModelError("the ONNX graph has no input")
    first = inputs[0]
    dims = first.type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
    return first.name, shape


def tensor_names(model: Any) -> list[str]:
    """Every tensor computed by a node of the graph, in node (topological) order."""
    names: list[str] = []
    for node in model.graph.node:
        names.extend(n for n in node.output if n)
    return names


def auto_tensor_names(model: Any) -> list[str]:
    """The default layers of an ONNX graph: the output of every Conv, Gemm and MatMul node."""
    return [
        node.output[0]
        for node in model.graph.node
        if node.op_type in AUTO_OPS and node.output and node.output[0]
    ]


def check_tensor_names(model: Any, names: Sequence[str], where: str) -> None:
    available = tensor_names(model)
    known = set(available) | {i.name for i in model.graph.input}
    for name in names:
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


def check_input_size(spec: ModelSpec, model: Any) -> None:
    """The preprocessed image must fit a static spatial input size of the graph."""
    _, shape = graph_input(model)
    if len(shape) != 4:
        raise ModelError(
            f"model {spec.name!r}: the ONNX input has shape {shape}; actpipe feeds images "
            "of shape (batch, 3, height, width)"
        )
    size = spec.preprocess.size
    spatial = [d for d in shape[2:] if isinstance(d, int) and d > 0]
    if len(spatial) == 2 and (size is None or list(spatial) != [size, size]):
        raise ModelError(
            f"model {spec.name!r}: the ONNX graph takes {spatial[0]}x{spatial[1]} images but "
            f"preprocessing gives {size}x{size}; set 'preprocess: {{size: {spatial[0]}}}' "
            "(and 'resize:') in its block"
        )
    if isinstance(shape[0], int) and shape[0] > 0 and spec.batch_size % shape[0]:
        raise ModelError(
            f"model {spec.name!r}: the ONNX graph has a fixed batch of {shape[0]}; set "
            f"'batch_size: {shape[0]}' or re-export it with a dynamic batch axis"
        )


def check_onnx(spec: ModelSpec) -> dict[str, Any]:
    """Parse the file and check layer names and input size (see ``check.check_model``)."""
    model = load_graph(spec.arch, f"model {spec.name!r}")
    layers = resolve_onnx_layers(spec, model)
    check_tensor_names(model, layers, f"model {spec.name!r}")
    check_input_size(spec, model)
    names = layers if spec.auto_layers else spec.layer_names
    return {"source": "onnx", "path": str(Path(spec.arch).resolve()), "layers": names}


def instrumented_path(
    source: str | os.PathLike[str],
    layers: Sequence[str],
    cache_dir: str | os.PathLike[str] | None,
    source_sha256: str | None = None,
) -> Path:
    """Where the instrumented copy of ``source`` with ``layers`` as outputs is cached
    (``source_sha256``: the source's digest when the caller has it already)."""
    import onnx

    source = Path(source)
    digest = source_sha256 or sha256_file(source)
    key = hashlib.sha256(
        json.dumps({"sha256": digest, "layers": list(layers), "onnx": onnx.__version__}).encode()
    ).hexdigest()[:16]
    folder = Path(cache_dir) if cache_dir is not None else source.parent
    return folder / f"{source.stem}.{key}{INSTRUMENTED_SUFFIX}"


def instrument(
    spec: ModelSpec,
    layers: Sequence[str],
    cache_dir: str | os.PathLike[str] | None = None,
    source_sha256: str | None = None,
) -> Path:
    """The instrumented model of ``spec`` (built once, then reused from the cache).

    ``cache_dir`` defaults to the folder of the .onnx file. The copy is written atomically,
    so concurrent jobs building the same copy never see a partial file.
    """
    import onnx

    where = f"model {spec.name!r}"
    target = instrumented_path(spec.arch, layers, cache_dir, source_sha256)
    if target.is_file():
        return target
    model = load_graph(spec.arch, where)
    check_tensor_names(model, layers, where)
    add_outputs(model, layers)
    with atomic_output(target) as tmp:
        onnx.save(model, str(tmp))
    log.info("%s: instrumented ONNX model with %d layer outputs: %s", where, len(layers), target)
    return target


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
    path: str | os.PathLike[str], device: str = "cpu", threads: int | None = None
) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    provider_list = providers(device)
    provider_options: list[dict[str, Any]] = []
    for name in provider_list:
        if name == "CUDAExecutionProvider" and ":" in device:
            provider_options.append({"device_id": int(device.split(":", 1)[1])})
        else:
            provider_options.append({})
    return onnxruntime.InferenceSession(
        str(path), options, providers=provider_list, provider_options=provider_options
    )


def tensor_shapes(
    path: str | os.PathLike[str], size: int | None, names: Sequence[str] | None = None
) -> dict[str, tuple[int, ...]]:
    """Output shape of every graph tensor (or of ``names``) on one dummy image."""
    model = load_graph(path, f"ONNX file {str(path)!r}")
    wanted = list(names) if names is not None else tensor_names(model)
    input_name, shape = graph_input(model)
    dims = [d if isinstance(d, int) and d > 0 else None for d in shape]
    side = size or 224
    dummy_shape = [
        1 if dims[0] is None else dims[0],
        dims[1] or 3,
        dims[2] or side,
        dims[3] or side,
    ]
    add_outputs(model, wanted)
    import onnxruntime

    session = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    dummy = np.zeros(dummy_shape, dtype=np.float32)
    outputs = session.run(wanted, {input_name: dummy})
    return {
        name: tuple(int(s) for s in out.shape[1:])
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
