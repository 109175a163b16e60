"""The image input of an ONNX graph: what it takes, and whether actpipe can feed it.

actpipe feeds one float tensor of preprocessed RGB images, ``(batch, 3, size, size)``
(``input_layout: nchw``, the default) or ``(batch, size, size, 3)`` (``input_layout: nhwc``,
transposed when fed). :func:`image_input` reads the graph's declared input and refuses,
naming the model, the input and its shape, graphs with several inputs, non-float inputs, a
rank other than 4 or a channel axis that is not 3 (pointing at ``input_layout`` when the
other layout fits); :func:`check_input_size` refuses a fixed spatial size other than the
preprocessing's. A fixed batch dimension is fine: the capture feeds pieces of that size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ModelError

if TYPE_CHECKING:
    from .spec import ModelSpec

LAYOUTS = ("nchw", "nhwc")
FLOAT_INPUTS = {1: "float32", 10: "float16", 11: "float64"}
"""ONNX element types actpipe feeds (``TensorProto.FLOAT``, ``FLOAT16``, ``DOUBLE``), with
the numpy dtype the float32 images are cast to."""

Dim = int | str


def dim_text(dim: Dim) -> str:
    return str(dim) if isinstance(dim, int) else repr(dim)


def shape_text(shape: tuple[Dim, ...] | None) -> str:
    """``[1, 3, 224, 224]``; free dims by name (``['batch', 3, 224, 224]``)."""
    if shape is None:
        return "(unknown shape)"
    return "[" + ", ".join(dim_text(d) for d in shape) + "]"


def value_shape(value: Any) -> tuple[Dim, ...] | None:
    """The declared shape of a graph input/output: ints for fixed dims, the dim's name (or
    ``'?'``) for free ones; ``None`` when no shape is declared."""
    tensor = value.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    return tuple(
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim
    )


def elem_type_name(value: Any) -> str:
    """``float32``, ``uint8``, ... of a graph value (``'not a tensor'`` for sequences/maps)."""
    import onnx

    if not value.type.HasField("tensor_type"):
        return "not a tensor"
    elem = value.type.tensor_type.elem_type
    try:
        return str(onnx.helper.tensor_dtype_to_np_dtype(elem))
    except (KeyError, ValueError, TypeError):
        return onnx.TensorProto.DataType.Name(elem).lower()


@dataclass(frozen=True)
class GraphInput:
    """The image input of a graph: name, declared shape (in the graph's own layout), the
    numpy dtype fed and the layout (``nchw`` or ``nhwc``)."""

    name: str
    shape: tuple[Dim, ...]
    dtype: str = "float32"
    layout: str = "nchw"

    @property
    def fixed_batch(self) -> int | None:
        """The graph's fixed batch size, or ``None`` when the batch axis is free."""
        first = self.shape[0] if self.shape else None
        return first if isinstance(first, int) and first > 0 else None

    @property
    def spatial(self) -> tuple[Dim, Dim]:
        """``(height, width)`` as declared."""
        if self.layout == "nhwc":
            return self.shape[1], self.shape[2]
        return self.shape[2], self.shape[3]

    def feed_shape(self, batch: int, side: int) -> tuple[int, ...]:
        """The array shape fed for ``batch`` images of ``side`` x ``side`` pixels."""
        if self.layout == "nhwc":
            return (batch, side, side, 3)
        return (batch, 3, side, side)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description for the ``runtime`` attribute."""
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "layout": self.layout,
        }


def _fixed(dim: Dim) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


def image_input(model: Any, where: str, layout: str = "nchw") -> GraphInput:
    """The graph's one image input, checked against what actpipe feeds (module docstring).

    Raises :class:`ModelError` naming ``where`` (the model entry), the input and its shape.
    """
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    described = ", ".join(
        f"{i.name!r} ({elem_type_name(i)} {shape_text(value_shape(i))})" for i in inputs
    )
    if not inputs:
        raise ModelError(f"{where}: the ONNX graph has no input; actpipe feeds it one image tensor")
    if len(inputs) > 1:
        raise ModelError(
            f"{where}: the ONNX graph has {len(inputs)} inputs ({described}); actpipe feeds "
            "one image tensor. Re-export the model with the image as its only input (fold the "
            "others in as constants, e.g. by wrapping the model in a module that supplies them)"
        )
    value = inputs[0]
    name = value.name
    dtype = elem_type_name(value)
    shape = value_shape(value)
    if dtype not in FLOAT_INPUTS.values():
        raise ModelError(
            f"{where}: the ONNX input {name!r} is {dtype} of shape {shape_text(shape)}; "
            "actpipe feeds preprocessed float images (normalised by 'preprocess:'). Re-export "
            "the graph with a float32 image input, leaving the conversion to integers out"
        )
    if shape is None:
        shape = ("?", "?", "?", "?")
    if len(shape) != 4:
        raise ModelError(
            f"{where}: the ONNX input {name!r} has shape {shape_text(shape)} (rank "
            f"{len(shape)}); actpipe feeds images of shape (batch, 3, height, width), or "
            "(batch, height, width, 3) with 'input_layout: nhwc'"
        )
    channels_first, channels_last = _fixed(shape[1]), _fixed(shape[3])
    if layout == "nchw" and channels_first not in (None, 3):
        if channels_last == 3:
            raise ModelError(
                f"{where}: the ONNX input {name!r} has shape {shape_text(shape)}: channels "
                "last (NHWC); add 'input_layout: nhwc' to the model's block"
            )
        raise ModelError(
            f"{where}: the ONNX input {name!r} has shape {shape_text(shape)}: "
            f"{channels_first} channels, but actpipe feeds RGB images (3 channels)"
        )
    if layout == "nhwc" and channels_last not in (None, 3):
        if channels_first == 3:
            raise ModelError(
                f"{where}: the ONNX input {name!r} has shape {shape_text(shape)}: channels "
                "first (NCHW), but the block says 'input_layout: nhwc'; remove that key"
            )
        raise ModelError(
            f"{where}: the ONNX input {name!r} has shape {shape_text(shape)}: "
            f"{channels_last} channels, but actpipe feeds RGB images (3 channels)"
        )
    return GraphInput(name, tuple(shape), dtype, layout)


def check_input_size(spec: ModelSpec, graph_input: GraphInput) -> None:
    """The preprocessed images (``size`` x ``size``) must fit a fixed spatial size of the
    graph; the message names the ``preprocess:`` setting that would."""
    where = f"model {spec.name!r}"
    height, width = (_fixed(d) for d in graph_input.spatial)
    shape = shape_text(graph_input.shape)
    name = graph_input.name
    size = spec.preprocess.size
    if height and width and height != width:
        raise ModelError(
            f"{where}: the ONNX input {name!r} has shape {shape}: {height}x{width} images, "
            "but actpipe's preprocessing gives square crops; re-export the graph with a "
            "square or free spatial size"
        )
    fixed = height or width
    if fixed is None or fixed == size:
        return
    resize = spec.preprocess.resize
    if size and resize and resize != size:
        suggested = round(fixed * resize / size)
        hint = f"'preprocess: {{size: {fixed}, resize: {suggested}}}' (keeps resize/size)"
    else:
        hint = f"'preprocess: {{size: {fixed}, resize: {fixed}}}'"
    given = f"{size}x{size}" if size else "uncropped images of varying size ('size: null')"
    raise ModelError(
        f"{where}: the ONNX input {name!r} has shape {shape}: it takes {fixed}x{fixed} "
        f"images but preprocessing gives {given}; set {hint} in the model's block"
    )
