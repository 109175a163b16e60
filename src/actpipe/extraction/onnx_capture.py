"""Running an ONNX model's instrumented graph with onnxruntime (the ONNX
:class:`~.capture.Capture`)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from .._io import sha256_file
from ..models.onnx import (
    check_input_size,
    check_tensor_names,
    graph_input,
    instrument,
    load_graph,
    open_session,
    resolve_onnx_layers,
)
from ..models.spec import ModelSpec
from .capture import reduce_output


class OnnxCapture:
    """An ONNX model whose layers (tensor names) are outputs of its instrumented copy.

    :meth:`run` feeds one batch to onnxruntime and returns the reduced output of every
    layer, in config order; ``shapes`` and ``applied`` are filled as for torch.
    ``source_sha256`` is the checksum of the ``.onnx`` file, ``path`` the instrumented copy.
    """

    def __init__(
        self,
        spec: ModelSpec,
        cache_dir: str | os.PathLike[str] | None = None,
        device: str = "cpu",
        threads: int | None = None,
    ):
        where = f"model {spec.name!r}"
        graph = load_graph(spec.arch, where)
        layers = resolve_onnx_layers(spec, graph)
        check_tensor_names(graph, layers, where)
        check_input_size(spec, graph)
        self.input_name, _ = graph_input(graph)
        del graph
        self.model_name = spec.name
        self.layers = list(
            spec.with_layer_names(layers).layers if spec.auto_layers else spec.layers
        )
        self.tensors = list(dict.fromkeys(layer.module for layer in self.layers))
        self.source_sha256 = sha256_file(spec.arch)
        self.path = instrument(spec, self.tensors, cache_dir, self.source_sha256)
        self.session = open_session(self.path, device, threads)
        self.providers = list(self.session.get_providers())
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.applied: dict[str, str] = {}

    def run(
        self, inputs: torch.Tensor, buffers: dict[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        array = inputs.detach().cpu().float().contiguous().numpy()
        outputs = dict(
            zip(self.tensors, self.session.run(self.tensors, {self.input_name: array}), strict=True)
        )
        features: dict[str, torch.Tensor] = {}
        for layer in self.layers:
            x = torch.from_numpy(np.asarray(outputs[layer.module], dtype=np.float32))
            if x.dim() == 1:
                x = x[:, None]
            reduced, applied = reduce_output(x, layer.reduce, layer.name)
            if buffers is not None:
                target = buffers[layer.name][: reduced.shape[0]]
                target.copy_(reduced)
                reduced = target
            features[layer.name] = reduced
            self.shapes[layer.name] = tuple(x.shape[1:])
            self.applied[layer.name] = applied
        return features

    def remove(self) -> None:
        self.session: Any = None
