"""Freeing a fixed batch axis of an ONNX graph where that is provably safe.

A graph exported without a dynamic batch axis takes exactly ``N`` images per run. The capture
then feeds pieces of ``N`` (the last one padded), which is always exact. Feeding whole
batches is faster, but only correct if every image's outputs depend on that image alone and
no shape in the graph spells out ``N``: exporters bake the batch into ``Reshape`` targets and
``Shape`` arithmetic, and batch-mixing ops exist.

:func:`batch_free_proof` walks the graph in node order and classifies every tensor as
*constant* (initializers, ``Constant`` nodes and what is computed from them alone; small
ones are folded to their values with onnx's reference implementation) or
*batch-major* (axis 0 indexes the images, and row ``i`` depends on image ``i`` only). The
image input is batch-major. A node with a batch-major input must be one of the rules below,
which keep that property, with their attributes and constant inputs checked; any other op,
an op of another domain, control flow, random ops, ``Shape`` of a batch-major tensor, and
graph outputs that are not batch-major make the proof fail (the graph is then fed in pieces):

- elementwise and activation ops, normalisations over non-batch axes (``BatchNormalization``
  in inference mode, ``InstanceNormalization``, ``LayerNormalization``, ``LRN``), ``Softmax``
  and friends over a non-batch axis;
- ``Conv``, ``ConvTranspose``, pooling (``MaxPool`` without its indices output), ``Resize``
  with a constant scale of 1 on the batch axis, ``Pad`` with no padding of the batch axis,
  ``DepthToSpace``/``SpaceToDepth``;
- broadcasting ops whose batch-major inputs have the output's rank and whose constant
  inputs have a smaller rank or size 1 on axis 0;
- ``Gemm`` (batch-major ``A``, constant ``B`` and ``C``), ``MatMul`` (a batch-major left
  side, or two batch-major sides of the same rank of at least 3);
- ``Flatten``, ``Transpose``, ``Concat``, ``Split``, ``Slice``, ``Gather``, ``Squeeze``,
  ``Unsqueeze``, reductions and ``ArgMax``/``ArgMin`` that keep axis 0 in place and do not
  work along it (constant, known axes);
- ``Reshape`` to a constant shape that starts with ``0`` (copy the batch), or ``-1`` or
  ``N`` followed by explicit sizes whose product is one image's size; ``N`` is then rewritten
  as ``0`` in the copy.

When the proof holds, :func:`free_batch_axis` gives the copy's input a free batch axis
(``batch``), applies the ``Reshape`` rewrites, and frees axis 0 of every declared batch-major
value. :data:`BATCH_RULES_VERSION` changes whenever these rules do (it is part of the cache key
of instrumented copies).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .onnx_input import GraphInput

log = logging.getLogger(__name__)

BATCH_RULES_VERSION = 1
FREE_BATCH = "batch"
SMALL_VALUES = 64
"""Initializers of at most this many values are read to check shapes, axes and scales."""

UNARY = frozenset(
    "Abs Acos Acosh Asin Asinh Atan Atanh BitwiseNot Cast CastLike Ceil Celu Clip Cos Cosh "
    "DepthToSpace Dropout Elu Erf Exp Floor Gelu HardSigmoid HardSwish Identity "
    "InstanceNormalization IsInf IsNaN LRN LeakyRelu Log Mish Neg Not Reciprocal Relu Round "
    "Selu Shrink Sigmoid Sign Sin Sinh Softplus Softsign SpaceToDepth Sqrt Tan Tanh "
    "ThresholdedRelu Conv ConvTranspose AveragePool LpPool GlobalAveragePool GlobalMaxPool "
    "GlobalLpPool BatchNormalization QuantizeLinear DequantizeLinear".split()
)
"""Ops whose first input may be batch-major (their other inputs constant): each image's
output depends on that image only, axis 0 stays axis 0."""

BROADCAST = frozenset(
    "Add And BitShift BitwiseAnd BitwiseOr BitwiseXor Div Equal Greater GreaterOrEqual Less "
    "LessOrEqual Max Mean Min Mod Mul Or PRelu Pow Sub Sum Where Xor".split()
)
AXIS_OPS = frozenset("Softmax LogSoftmax Hardmax LpNormalization LayerNormalization".split())
REDUCE = frozenset(
    "ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd "
    "ReduceSum ReduceSumSquare".split()
)
RANDOM = frozenset(
    "RandomNormal RandomNormalLike RandomUniform RandomUniformLike Multinomial Bernoulli".split()
)
AXES_INPUT_SINCE = {"ReduceSum": 13, "Squeeze": 13, "Unsqueeze": 13, "Split": 13}
"""Opset from which an op takes ``axes``/``split`` as an input instead of an attribute
(the other reductions from 18)."""


class Unsafe(Exception):
    """The proof fails; the message says at which node and why."""


@dataclass
class Proof:
    """A successful proof: the Reshape shape constants to rewrite (node index -> new
    shape) and the batch-major values."""

    batch_major: set[str] = field(default_factory=set)
    reshapes: dict[int, list[int]] = field(default_factory=dict)


def _attr(node: Any, name: str, default: Any = None) -> Any:
    import onnx

    for attribute in node.attribute:
        if attribute.name == name:
            return onnx.helper.get_attribute_value(attribute)
    return default


def _opset(model: Any) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


class _Walker:
    """The state of one proof: what is constant (and its value where known), what is
    batch-major, and each value's rank from shape inference."""

    def __init__(self, model: Any, graph_input: GraphInput, data_dir: Path | None = None):
        import onnx

        self.model = model
        self.opset = _opset(model)
        self.batch = graph_input.fixed_batch
        inferred = onnx.shape_inference.infer_shapes(model)
        self.shapes: dict[str, list[int | None]] = {}
        for value in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
            tensor = value.type.tensor_type
            if tensor.HasField("shape"):
                self.shapes[value.name] = [
                    d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim
                ]
        self.constant: dict[str, Any] = {}
        for init in model.graph.initializer:
            self.shapes.setdefault(init.name, list(init.dims))
            self.constant[init.name] = _small_value(init, data_dir)
        self.constant[""] = None  # an omitted optional input
        self.batch_major = {graph_input.name}
        self.proof = Proof(self.batch_major)

    def rank(self, name: str) -> int:
        shape = self.shapes.get(name)
        if shape is None:
            raise Unsafe(f"the rank of {name!r} is unknown")
        return len(shape)

    def value(self, node: Any, index: int) -> list[Any] | None:
        """The constant input ``index`` of ``node`` as a flat list (None if omitted)."""
        if index >= len(node.input) or not node.input[index]:
            return None
        name = node.input[index]
        if name not in self.constant or self.constant[name] is None:
            raise Unsafe(f"{node.op_type} needs the value of {name!r}, which is not known")
        return self.constant[name].reshape(-1).tolist()

    def axes(self, node: Any, since: int) -> list[int] | None:
        """``axes`` of ``node``: its attribute before opset ``since``, its input from it."""
        if self.opset < since:
            return _attr(node, "axes")
        return self.value(node, 1)

    def visit(self, index: int, node: Any) -> None:
        inputs = [name for name in node.input]
        batch_in = [name for name in inputs if name in self.batch_major]
        if node.op_type in RANDOM:
            raise Unsafe(f"{node.op_type} draws random numbers")
        if any(a.HasField("g") or len(a.graphs) for a in node.attribute):
            raise Unsafe(f"{node.op_type} runs a subgraph, which may read any value")
        if node.domain not in ("", "ai.onnx") and (batch_in or not inputs):
            raise Unsafe(f"{node.domain}.{node.op_type} is an op of another domain")
        if not batch_in:
            if node.op_type == "Constant":
                value = _constant_value(node)
                self.constant[node.output[0]] = value
                if value is not None:
                    self.shapes.setdefault(node.output[0], list(value.shape))
                return
            if all(name in self.constant for name in inputs):
                values = self.fold(node)
                for name, value in zip(node.output, values, strict=True):
                    self.constant[name] = value
                    if value is not None:
                        self.shapes.setdefault(name, list(value.shape))
                return
            raise Unsafe(f"{node.op_type} node {node.name!r} reads a value of unknown kind")
        rule = self.rule(index, node, batch_in)
        for name in rule:
            self.batch_major.add(name)

    def fold(self, node: Any) -> list[Any]:
        """The values of a node computed from small known constants (shape arithmetic such as
        ``Cast`` of a ``Constant``), evaluated by onnx's reference implementation at the
        graph's opset; ``None`` for each output otherwise."""
        import onnx
        from onnx.reference import ReferenceEvaluator

        unknown = [None] * len(node.output)
        names = [name for name in node.input if name]
        values = [self.constant.get(name) for name in names]
        if any(v is None or v.size > SMALL_VALUES for v in values):
            return unknown
        feeds = dict(zip(names, values, strict=True))
        inputs = [
            onnx.helper.make_tensor_value_info(
                name, onnx.helper.np_dtype_to_tensor_dtype(value.dtype), value.shape
            )
            for name, value in feeds.items()
        ]
        outputs = [onnx.helper.make_empty_tensor_value_info(name) for name in node.output]
        graph = onnx.helper.make_graph([node], "fold", inputs, outputs)
        model = onnx.helper.make_model(graph, opset_imports=list(self.model.opset_import))
        try:
            results = ReferenceEvaluator(model).run(None, feeds)
        except Exception:  # an op the reference cannot fold: its value stays unknown
            return unknown
        return [np.asarray(r) if np.size(r) <= SMALL_VALUES else None for r in results]

    def require_constant(self, node: Any, skip: tuple[int, ...] = (0,)) -> None:
        for i, name in enumerate(node.input):
            if i not in skip and name not in self.constant:
                raise Unsafe(f"{node.op_type} node {node.name!r}: input {name!r} is not constant")

    def normal_axis(self, axis: int, rank: int) -> int:
        return axis + rank if axis < 0 else axis

    def rule(self, index: int, node: Any, batch_in: list[str]) -> list[str]:
        """The batch-major outputs of a node with batch-major inputs, or :class:`Unsafe`."""
        op = node.op_type
        x = node.input[0] if node.input else ""
        where = f"{op} node {node.name or node.output[0]!r}"
        if op in ("If", "Loop", "Scan", "Shape", "Size", "Einsum"):
            raise Unsafe(f"{where}: {op} of a batch-major value")
        if op in UNARY or op in ("MaxPool", "Pad", "Resize", "Upsample"):
            if x not in self.batch_major:
                raise Unsafe(f"{where}: its first input is not the batch-major one")
            self.require_constant(node)
            if op == "BatchNormalization" and (
                _attr(node, "training_mode", 0) or len(node.output) > 1
            ):
                raise Unsafe(f"{where}: training mode")
            if op == "Dropout" and len(node.input) > 2 and node.input[2]:
                if self.value(node, 2) != [0]:
                    raise Unsafe(f"{where}: training mode may be on")
            if op == "MaxPool" and len(node.output) > 1 and node.output[1]:
                raise Unsafe(f"{where}: its indices count across the batch")
            if op in ("QuantizeLinear", "DequantizeLinear"):
                axis = self.normal_axis(_attr(node, "axis", 1), self.rank(x))
                if axis == 0:
                    raise Unsafe(f"{where}: per-axis along the batch")
            if op == "Pad":
                self.check_pad(node, where)
            if op in ("Resize", "Upsample"):
                self.check_resize(node, where)
            return [node.output[0]] if op != "Dropout" else [o for o in node.output if o]
        if op in BROADCAST:
            out_rank = self.rank(node.output[0])
            for name in node.input:
                if name in self.batch_major:
                    if self.rank(name) != out_rank:
                        raise Unsafe(f"{where}: {name!r} broadcasts across the batch axis")
                elif name in self.constant:
                    shape = self.shapes.get(name)
                    if shape is None:
                        raise Unsafe(f"{where}: the shape of {name!r} is unknown")
                    if len(shape) == out_rank and shape[0] != 1:
                        raise Unsafe(f"{where}: constant {name!r} varies along the batch axis")
                else:
                    raise Unsafe(f"{where}: {name!r} is of unknown kind")
            return [node.output[0]]
        if op == "Gemm":
            if node.input[0] not in self.batch_major or _attr(node, "transA", 0):
                raise Unsafe(f"{where}: A is not a batch-major matrix")
            self.require_constant(node)
            if len(node.input) > 2 and node.input[2]:
                shape = self.shapes.get(node.input[2])
                if shape is None or (len(shape) == 2 and shape[0] != 1):
                    raise Unsafe(f"{where}: C varies along the batch axis")
            return [node.output[0]]
        if op == "MatMul":
            a, b = node.input[0], node.input[1]
            ra, rb = self.rank(a), self.rank(b)
            if a in self.batch_major and b in self.batch_major:
                if ra != rb or ra < 3:
                    raise Unsafe(f"{where}: mixes batch-major operands")
            elif a in self.batch_major:
                if ra < 2 or rb > ra or (rb == ra and self.shapes[b][0] != 1):
                    raise Unsafe(f"{where}: B broadcasts across the batch axis")
            else:
                raise Unsafe(f"{where}: the batch-major operand is on the right")
            return [node.output[0]]
        if op in AXIS_OPS:
            if x not in self.batch_major:
                raise Unsafe(f"{where}: its first input is not the batch-major one")
            self.require_constant(node)
            rank = self.rank(x)
            default = -1 if op == "LpNormalization" or self.opset >= 13 else 1
            if op == "LayerNormalization":
                default = -1
            if self.normal_axis(_attr(node, "axis", default), rank) == 0:
                raise Unsafe(f"{where}: works along the batch axis")
            return [name for name in node.output if name]
        if op == "Flatten":
            if self.normal_axis(_attr(node, "axis", 1), self.rank(x)) == 0:
                raise Unsafe(f"{where}: axis 0")
            return [node.output[0]]
        if op == "Transpose":
            perm = _attr(node, "perm")
            if not perm or perm[0] != 0:
                raise Unsafe(f"{where}: moves the batch axis")
            return [node.output[0]]
        if op == "Concat":
            if any(name not in self.batch_major for name in node.input):
                raise Unsafe(f"{where}: joins a constant to batch-major values")
            if self.normal_axis(_attr(node, "axis", 0), self.rank(x)) == 0:
                raise Unsafe(f"{where}: along the batch axis")
            return [node.output[0]]
        if op == "Split":
            self.require_constant(node)
            if self.normal_axis(_attr(node, "axis", 0), self.rank(x)) == 0:
                raise Unsafe(f"{where}: along the batch axis")
            return [name for name in node.output if name]
        if op == "Slice":
            self.require_constant(node)
            return [self.check_slice(node, where)]
        if op == "Gather":
            if node.input[1] in self.batch_major:
                raise Unsafe(f"{where}: batch-major indices")
            if self.normal_axis(_attr(node, "axis", 0), self.rank(x)) == 0:
                raise Unsafe(f"{where}: along the batch axis")
            return [node.output[0]]
        if op in ("Squeeze", "Unsqueeze"):
            self.require_constant(node)
            axes = self.axes(node, AXES_INPUT_SINCE[op])
            rank = self.rank(node.output[0] if op == "Unsqueeze" else x)
            if not axes or 0 in [self.normal_axis(a, rank) for a in axes]:
                raise Unsafe(f"{where}: touches the batch axis")
            return [node.output[0]]
        if op in REDUCE or op in ("ArgMax", "ArgMin"):
            self.require_constant(node)
            if op in REDUCE:
                axes = self.axes(node, AXES_INPUT_SINCE.get(op, 18))
            else:
                axes = [_attr(node, "axis", 0)]
            if not axes or 0 in [self.normal_axis(a, self.rank(x)) for a in axes]:
                raise Unsafe(f"{where}: reduces along the batch axis")
            return [node.output[0]]
        if op == "Reshape":
            self.require_constant(node)
            self.check_reshape(index, node, where)
            return [node.output[0]]
        if op in ("Expand", "Tile"):
            self.require_constant(node)
            value = self.value(node, 1) or []
            rank = self.rank(x)
            if len(value) != rank or value[0] != 1:
                raise Unsafe(f"{where}: repeats along the batch axis")
            return [node.output[0]]
        raise Unsafe(f"{where}: {op} is not known to keep images independent")

    def check_pad(self, node: Any, where: str) -> None:
        rank = self.rank(node.input[0])
        pads = _attr(node, "pads") if self.opset < 11 else self.value(node, 1)
        if self.opset >= 18 and len(node.input) > 3 and node.input[3]:
            raise Unsafe(f"{where}: explicit axes")
        if not pads or len(pads) != 2 * rank or pads[0] != 0 or pads[rank] != 0:
            raise Unsafe(f"{where}: pads the batch axis")

    def check_resize(self, node: Any, where: str) -> None:
        if _attr(node, "coordinate_transformation_mode") == b"tf_crop_and_resize":
            raise Unsafe(f"{where}: crops with a region")
        if node.op_type == "Upsample" or self.opset < 11:
            scales = _attr(node, "scales") or self.value(node, 1)
        else:
            if len(node.input) > 3 and node.input[3]:
                raise Unsafe(f"{where}: target sizes spell out the batch")
            scales = self.value(node, 2)
        if not scales or scales[0] != 1:
            raise Unsafe(f"{where}: scales the batch axis")

    def check_slice(self, node: Any, where: str) -> str:
        rank = self.rank(node.input[0])
        if self.opset < 10:
            starts, ends = _attr(node, "starts"), _attr(node, "ends")
            axes = _attr(node, "axes") or list(range(len(starts)))
            steps = [1] * len(starts)
        else:
            starts, ends = self.value(node, 1), self.value(node, 2)
            axes = self.value(node, 3) or list(range(len(starts or [])))
            steps = self.value(node, 4) or [1] * len(axes)
        for axis, start, end, step in zip(axes, starts or [], ends or [], steps, strict=False):
            if self.normal_axis(axis, rank) == 0 and (start != 0 or step != 1 or end < 2**31 - 1):
                raise Unsafe(f"{where}: slices the batch axis")
        return node.output[0]

    def check_reshape(self, index: int, node: Any, where: str) -> None:
        if _attr(node, "allowzero", 0):
            raise Unsafe(f"{where}: allowzero")
        shape = self.value(node, 1) or []
        if not shape:
            raise Unsafe(f"{where}: empty target shape")
        if shape[0] == 0:
            return
        if shape[0] == self.batch:
            # Axis 0 keeps its size, so in C order row i is still image i's values.
            self.proof.reshapes[index] = [0, *shape[1:]]
            return
        source = self.shapes.get(node.input[0])
        per_image = math.prod(source[1:]) if source and None not in source[1:] else None
        explicit = shape[1:]
        if shape[0] == -1 and all(d > 0 for d in explicit) and math.prod(explicit) == per_image:
            return
        raise Unsafe(f"{where}: target shape {shape} mixes images")


def _constant_value(node: Any) -> Any:
    """The value of a ``Constant`` node as a numpy array (``None`` for sparse or strings)."""
    from onnx import numpy_helper

    for attribute in node.attribute:
        if attribute.name == "value":
            return numpy_helper.to_array(attribute.t)
        if attribute.name in ("value_int", "value_ints", "value_float", "value_floats"):
            return np.asarray(_attr(node, attribute.name))
    return None


def _small_value(tensor: Any, data_dir: Path | None) -> Any:
    """An initializer's value when it is small (shapes, axes, scales; read from its external
    data file if need be), else ``None``."""
    import onnx
    from onnx import numpy_helper
    from onnx.external_data_helper import load_external_data_for_tensor

    if math.prod(tensor.dims) > SMALL_VALUES:
        return None
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        if data_dir is None:
            return None
        copy = onnx.TensorProto()
        copy.CopyFrom(tensor)
        load_external_data_for_tensor(copy, str(data_dir))
        tensor = copy
    return numpy_helper.to_array(tensor)


def batch_free_proof(model: Any, graph_input: GraphInput, data_dir: Path | None = None) -> Proof:
    """Prove that ``model`` (a graph whose input has a fixed batch axis) computes each image
    independently with the batch on axis 0 of every output; raise :class:`Unsafe` saying
    where the proof fails (see the module docstring for the rules)."""
    if graph_input.fixed_batch is None:
        raise Unsafe("the batch axis is already free")
    walker = _Walker(model, graph_input, data_dir)
    for index, node in enumerate(model.graph.node):
        walker.visit(index, node)
    for output in model.graph.output:
        if output.name not in walker.batch_major:
            raise Unsafe(f"output {output.name!r} is not batch-major")
    for name in walker.batch_major:
        shape = walker.shapes.get(name)
        if shape and shape[0] is not None and shape[0] != walker.batch:
            raise Unsafe(f"{name!r} has {shape[0]} rows for a batch of {walker.batch}")
    return walker.proof


def free_batch_axis(
    model: Any, graph_input: GraphInput, data_dir: Path | None = None
) -> str | None:
    """Free the fixed batch axis of ``model`` in place when :func:`batch_free_proof` holds;
    return a description of what was done, or ``None`` (the model is then unchanged)."""
    from onnx import numpy_helper

    try:
        proof = batch_free_proof(model, graph_input, data_dir)
    except Unsafe as exc:
        log.info("the fixed batch axis stays fixed: %s", exc)
        return None
    graph = model.graph
    for index, shape in proof.reshapes.items():
        node = graph.node[index]
        name = f"{node.input[1]}.actpipe_free_batch.{index}"
        graph.initializer.append(numpy_helper.from_array(_int64(shape), name))
        node.input[1] = name
    for value in [*graph.input, *graph.value_info, *graph.output]:
        if value.name in proof.batch_major and value.type.tensor_type.HasField("shape"):
            dims = value.type.tensor_type.shape.dim
            if dims:
                dims[0].Clear()
                dims[0].dim_param = FREE_BATCH
    return f"proved batch-independent; {len(proof.reshapes)} Reshape target(s) rewritten"


def _int64(values: list[int]) -> Any:
    return np.asarray(values, dtype=np.int64)


def iter_pieces(array: np.ndarray, piece: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """Split ``array`` along axis 0 into pieces of exactly ``piece`` rows for a graph with a
    fixed batch: ``(start, rows, piece_array)``, where only the first ``rows`` rows of
    ``piece_array`` are real; the last piece is padded with copies of its last real row (so
    padding never meets values the model has not seen), and the padding's outputs are to
    be dropped."""
    total = array.shape[0]
    for start in range(0, total, piece):
        chunk = array[start : start + piece]
        rows = chunk.shape[0]
        if rows < piece:
            pad = np.repeat(chunk[-1:], piece - rows, axis=0)
            chunk = np.concatenate([chunk, pad])
        yield start, rows, chunk
