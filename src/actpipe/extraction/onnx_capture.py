"""Running an ONNX model's instrumented graph with onnxruntime (the ONNX
:class:`~.capture.Capture`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import LayerError, ModelError
from ..models.onnx import (
    check_tensor_names,
    free_batch_agrees,
    has_external_data,
    instrument,
    load_graph,
    open_session,
    resolve_onnx_layers,
)
from ..models.onnx_batch import iter_pieces
from ..models.onnx_files import onnx_checksum
from ..models.onnx_input import check_input_size, image_input, shape_text
from ..models.spec import ModelSpec
from .capture import reduce_output

log = logging.getLogger(__name__)


class OnnxCapture:
    """An ONNX model whose layers (tensor names) are outputs of its instrumented copy.

    :meth:`run` takes a batch of any size (the extraction's ``batch_size``) as ``(batch, 3,
    height, width)`` float32, transposes it to channels last for ``input_layout: nhwc``,
    casts it to the input's float type, and returns the reduced output of every layer, in
    config order; ``shapes`` and ``applied`` are filled as for torch. A graph with a fixed
    batch of ``N`` (unless its copy has a provably safe free batch axis) is fed pieces of
    ``N`` images, the last one padded with copies of its last image whose outputs are
    dropped, so each image's features are those of the graph run as exported.

    ``checksum`` is the model's :class:`~actpipe.models.onnx_files.OnnxChecksum` (the .onnx
    file and its external data), ``source_sha256`` its digest, ``path`` the instrumented copy
    and ``piece`` the number of images per onnxruntime run (``None``: the whole batch).
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
        self.input = image_input(graph, where, spec.input_layout)
        check_input_size(spec, self.input)
        self.model_name = spec.name
        self.layers = list(
            spec.with_layer_names(layers).layers if spec.auto_layers else spec.layers
        )
        self.tensors = list(dict.fromkeys(layer.module for layer in self.layers))
        sums = None if cache_dir is None else Path(cache_dir) / "checksums"
        self.checksum = onnx_checksum(spec.arch, graph, sums)
        self.source_sha256 = self.checksum.sha256
        self.path = instrument(spec, self.tensors, cache_dir, self.source_sha256, graph)
        data_dir = Path(spec.arch).parent if has_external_data(graph) else None
        del graph
        self.session = open_session(self.path, device, threads, data_dir, where)
        fed = self.session.get_inputs()[0].shape[0]
        self.piece: int | None = fed if isinstance(fed, int) and fed > 0 else None
        fixed = self.input.fixed_batch
        if fixed is not None and self.piece is None:
            height, _ = self.input.spatial
            side = height if isinstance(height, int) and height > 0 else spec.preprocess.size
            if not free_batch_agrees(self.session, self.input, side or 224):
                log.warning(
                    "%s: whole batches through the copy with a free batch axis differ from "
                    "pieces of %d; feeding pieces of %d",
                    where,
                    fixed,
                    fixed,
                )
                self.piece = fixed
        self.providers = list(self.session.get_providers())
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.applied: dict[str, str] = {}

    def describe(self) -> dict[str, Any]:
        """How the graph is fed, for the ``runtime`` attribute."""
        fixed = self.input.fixed_batch
        if fixed is None:
            batch = "free"
        elif self.piece is None:
            batch = f"fixed {fixed} in the graph, proved safe to free: whole batches"
        else:
            batch = f"fixed {self.piece}: fed in pieces of {self.piece}, the last one padded"
        return {"input": self.input.describe(), "batch": batch, "piece": self.piece}

    def _feed(self, inputs: torch.Tensor) -> np.ndarray:
        x = inputs.detach().cpu()
        if self.input.layout == "nhwc":
            x = x.permute(0, 2, 3, 1)
        array = x.float().contiguous().numpy()
        return array if self.input.dtype == "float32" else array.astype(self.input.dtype)

    def _run(self, array: np.ndarray) -> dict[str, np.ndarray]:
        """Every captured tensor of one onnxruntime run, by tensor name (float32)."""
        try:
            outputs = self.session.run(self.tensors, {self.input.name: array})
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(
                f"model {self.model_name!r}: onnxruntime failed on input {self.input.name!r} "
                f"of shape {list(array.shape)} (the graph declares "
                f"{shape_text(self.input.shape)}): {exc}"
            ) from exc
        rows = array.shape[0]
        out = {}
        for name, value in zip(self.tensors, outputs, strict=True):
            value = np.asarray(value, dtype=np.float32)
            if value.ndim == 0 or value.shape[0] != rows:
                raise LayerError(
                    f"model {self.model_name!r}: tensor {name!r} has shape {list(value.shape)} "
                    f"for {rows} images; its first axis is not the batch axis: choose a tensor "
                    "that keeps one row per image"
                )
            out[name] = value
        return out

    def outputs(self, array: np.ndarray) -> dict[str, np.ndarray]:
        """Every captured tensor for the images ``array``, by tensor name: one run, or one run
        per piece of the graph's fixed batch gathered into one array per tensor (the padding
        rows dropped)."""
        total = array.shape[0]
        if self.piece is None or self.piece == total:
            return self._run(array)
        gathered: dict[str, np.ndarray] = {}
        for start, rows, chunk in iter_pieces(array, self.piece):
            for name, value in self._run(chunk).items():
                if name not in gathered:
                    gathered[name] = np.empty((total, *value.shape[1:]), dtype=np.float32)
                gathered[name][start : start + rows] = value[:rows]
        return gathered

    def run(
        self, inputs: torch.Tensor, buffers: dict[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        outputs = self.outputs(self._feed(inputs))
        features: dict[str, torch.Tensor] = {}
        for layer in self.layers:
            x = torch.from_numpy(outputs[layer.module])
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
