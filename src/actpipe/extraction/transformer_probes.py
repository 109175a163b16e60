"""Transformer probes and attention metrics, captured in the extraction's one forward pass.

:class:`TransformerProbes` registers hooks on the blocks of a supported Vision Transformer
(:mod:`actpipe.models.transformers`) and hands every probe output and metric, already
reduced, to a ``deliver`` callback (the :class:`~.torch_capture.TorchCapture` that owns it),
so probes and plain layers share one forward pass, one early stop and one set of buffers.

Where each value comes from (the model's own output is never changed):

- ``resid_pre``/``resid_post``: the block's input and output; ``resid_mid``: the input of
  the block's second norm (timm ``norm2``, torchvision ``ln_2``).
- **timm** ``Attention``: ``q``/``k`` are the outputs of ``attn.q_norm``/``attn.k_norm``
  (identity without q/k norm), ``v`` comes from the output of ``attn.qkv``, ``z`` is the input
  of ``attn.norm`` (the attention's output before its optional scale norm), ``head_out`` is
  computed from the input of ``attn.proj``. The pattern is the module's own softmax (the
  input of ``attn.attn_drop``) when fused attention is off; with fused attention on (whose
  kernel never forms the pattern) it is computed from ``q`` and ``k`` exactly as timm's
  unfused path does: ``softmax((q * scale) @ k^T)``.
- **torchvision** ``nn.MultiheadAttention`` (whose fused kernels expose nothing): ``q``, ``k``,
  ``v``, the pattern and ``z`` are computed from the module's input with its own in-projection
  (``softmax((q / sqrt(d_head)) @ k^T)``, ``z = A v``), and ``head_out`` with its
  ``out_proj``; this repeats the attention of the probed blocks.

All computation for a block happens inside that block's hooks and is dropped when the block's
attention ends, so at most one block's attention pattern is held at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import LayerError
from ..models.spec import LayerSpec, MetricSpec
from ..models.transformers import (
    ProbeOutput,
    check_transformer_probes,
    metric_outputs,
    probe_outputs,
)
from ..probes import METRICS, RESIDUAL_SITES
from . import attention_metrics as am
from .capture import reduce_heads, reduce_output

Deliver = Callable[[str, torch.Tensor, tuple[int, ...], str], None]
"""``deliver(name, features, original_shape, applied)``: features ``(batch, ...)`` reduced."""

PATTERN_METRICS = frozenset(
    {"attention_entropy", "attention_entropy_norm", "attention_distance", "sink_share", "density"}
)
"""Metrics that need the full attention pattern of the block."""
HEAD_AXES = ["stimulus", "replicate", "head", "feature"]
METRIC_AXES = ["stimulus", "replicate", "head"]


@dataclass
class _Block:
    """The outputs asked of one block and its scratch space during a forward pass."""

    index: int
    outputs: list[ProbeOutput] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    metric_names: dict[str, list[str]] = field(default_factory=dict)
    """The stored names of each metric (its probe name, and a short name given by 'as:')."""
    scratch: dict[str, torch.Tensor] = field(default_factory=dict)
    gram: torch.Tensor | None = None

    def sites(self) -> set[str]:
        return {out.probe.site for out in self.outputs}

    def residual(self, site: str) -> list[ProbeOutput]:
        return [o for o in self.outputs if o.probe.site == site]

    @property
    def head(self) -> list[ProbeOutput]:
        return [o for o in self.outputs if o.probe.kind == "head"]

    @property
    def needs_attention(self) -> bool:
        return bool(self.head or self.metrics)

    @property
    def full_pattern(self) -> bool:
        """Whether every query row of the pattern is needed (else the class row at most)."""
        rows = any(
            o.probe.site == "attn.pattern" and o.reduce not in ("cls", "cls_row") for o in self.head
        )
        return rows or bool(PATTERN_METRICS & set(self.metrics))

    @property
    def needs_pattern(self) -> bool:
        return self.full_pattern or "attn.pattern" in self.sites()

    @property
    def needs_z(self) -> bool:
        return bool({"attn.z", "attn.head_out"} & self.sites()) or "head_out_norm" in self.metrics

    @property
    def needs_v(self) -> bool:
        return "attn.v" in self.sites() or "value_norm" in self.metrics


class TransformerProbes:
    """Hooks capturing ``outputs`` (probes and metrics) of a supported Vision Transformer."""

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[LayerSpec],
        metrics: MetricSpec,
        deliver: Deliver,
        model_name: str,
    ) -> None:
        layout = check_transformer_probes(model, layers, metrics, model_name)
        assert layout is not None
        self.layout = layout
        self.model = model
        self.model_name = model_name
        self.deliver = deliver
        self.outputs = probe_outputs(layers)
        listed = {out.name for out in self.outputs}
        # Metrics of `metrics:` not also listed as layers (those are stored once, as layers).
        self.metric_outputs = [
            out
            for out in metric_outputs(metrics, len(layout.blocks), model_name)
            if out.name not in listed
        ]
        self.grid: tuple[int, int] | None = None
        self._distances: dict[tuple[Any, ...], torch.Tensor] = {}
        blocks: dict[int, _Block] = {}
        for out in self.outputs + self.metric_outputs:
            block = blocks.setdefault(out.probe.block, _Block(out.probe.block))
            if out.probe.kind == "metric":
                metric = str(out.probe.metric)
                if metric not in block.metrics:
                    block.metrics.append(metric)
                block.metric_names.setdefault(metric, []).append(out.name)
            else:
                block.outputs.append(out)
        self.blocks = blocks
        self._handles: list[Any] = []
        for block in blocks.values():
            if layout.family == "timm":
                self._hook_timm(block)
            else:
                self._hook_torchvision(block)

    # ------------------------------------------------------------------ description

    @property
    def layer_attrs(self) -> dict[str, dict[str, Any]]:
        """Dataset attributes of every stored output (see ``docs/format.md``)."""
        attrs: dict[str, dict[str, Any]] = {}
        for out in self.outputs + self.metric_outputs:
            entry: dict[str, Any] = {
                "kind": "metric" if out.probe.kind == "metric" else "probe",
                "probe": out.probe.site,
                "block": out.probe.block,
                "block_module": self.layout.blocks[out.probe.block],
            }
            if out.probe.kind == "head":
                entry.update(axes=HEAD_AXES, heads=self.layout.num_heads)
            elif out.probe.kind == "metric":
                metric = str(out.probe.metric)
                entry.update(
                    axes=METRIC_AXES,
                    heads=self.layout.num_heads,
                    metric=metric,
                    definition=METRICS[metric],
                )
                if metric == "attention_distance":
                    entry["units"] = "pixels"
                elif metric == "attention_entropy":
                    entry["units"] = "nats"
            attrs[out.name] = entry
        return attrs

    def describe(self) -> dict[str, Any]:
        """The model attribute ``transformer``: what the probes needed to know of the model."""
        return {
            "family": self.layout.family,
            "blocks": list(self.layout.blocks),
            "num_heads": self.layout.num_heads,
            "head_dim": self.layout.head_dim,
            "embed_dim": self.layout.embed_dim,
            "prefix_tokens": self.layout.prefix_tokens,
            "class_token": self.layout.class_token,
            "patch_size": list(self.layout.patch_size),
            "grid": list(self.grid) if self.grid else None,
        }

    # ------------------------------------------------------------------ running

    def begin(self, inputs: torch.Tensor) -> None:
        """Called before each forward pass with the input batch ``(batch, 3, H, W)``."""
        self.grid = self.layout.grid(int(inputs.shape[-2]), int(inputs.shape[-1]))
        for block in self.blocks.values():
            block.scratch.clear()

    def end(self) -> None:
        """Called after each forward pass (also one stopped early): drop what is left."""
        for block in self.blocks.values():
            block.scratch.clear()

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.end()

    def _residual_hooks(self, block: _Block, module: nn.Module, mid: nn.Module) -> None:
        pre, mid_outs, post = (block.residual(site) for site in RESIDUAL_SITES)
        if pre:

            def pre_hook(_m: nn.Module, args: tuple[Any, ...]) -> None:
                for out in pre:
                    self._deliver_residual(out, args[0])

            self._handles.append(module.register_forward_pre_hook(pre_hook))
        if mid_outs:

            def mid_hook(_m: nn.Module, args: tuple[Any, ...]) -> None:
                for out in mid_outs:
                    self._deliver_residual(out, args[0])

            self._handles.append(mid.register_forward_pre_hook(mid_hook))
        if post:

            def post_hook(_m: nn.Module, _args: tuple[Any, ...], output: Any) -> None:
                for out in post:
                    self._deliver_residual(out, output)

            self._handles.append(module.register_forward_hook(post_hook))

    def _deliver_residual(self, out: ProbeOutput, x: torch.Tensor) -> None:
        x = x.detach()
        features, applied = reduce_output(x, out.reduce, out.name)
        self.deliver(out.name, features, tuple(x.shape[1:]), applied)

    def _check_call(self, kwargs: dict[str, Any], block: _Block, what: str) -> None:
        mask = kwargs.get("attn_mask")
        if (
            mask is not None
            or kwargs.get("is_causal")
            or kwargs.get("key_padding_mask") is not None
        ):
            raise LayerError(
                f"model {self.model_name!r}: block {block.index} ran {what} with an attention "
                "mask; probes support unmasked self-attention only"
            )

    # ------------------------------------------------------------------ timm

    def _hook_timm(self, block: _Block) -> None:
        module = self.layout.block(self.model, block.index)
        self._residual_hooks(block, module, module.norm2)
        if not block.needs_attention:
            return
        attn = module.attn
        scratch = block.scratch

        def start(_m: nn.Module, _args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            scratch.clear()
            self._check_call(kwargs, block, "its attention")

        def keep(key: str) -> Callable[..., None]:
            def hook(_m: nn.Module, _args: tuple[Any, ...], output: torch.Tensor) -> None:
                scratch[key] = output

            return hook

        def keep_input(key: str) -> Callable[..., None]:
            def hook(_m: nn.Module, args: tuple[Any, ...]) -> None:
                scratch[key] = args[0]

            return hook

        def finish(_m: nn.Module, args: tuple[Any, ...]) -> None:
            try:
                self._finish_timm(block, attn, args[0])
            finally:
                scratch.clear()

        handles = [attn.register_forward_pre_hook(start, with_kwargs=True)]
        if block.needs_v:
            handles.append(attn.qkv.register_forward_hook(keep("qkv")))
        if block.needs_pattern or {"attn.q", "attn.k"} & block.sites():
            handles.append(attn.q_norm.register_forward_hook(keep("q")))
            handles.append(attn.k_norm.register_forward_hook(keep("k")))
        if block.needs_pattern:
            # Called with the softmax weights on the unfused path only.
            handles.append(attn.attn_drop.register_forward_hook(keep("pattern")))
        if "attn.z" in block.sites():
            handles.append(attn.norm.register_forward_pre_hook(keep_input("z")))
        handles.append(attn.proj.register_forward_pre_hook(finish))
        self._handles += handles

    def _finish_timm(self, block: _Block, attn: nn.Module, proj_in: torch.Tensor) -> None:
        s = block.scratch
        b, n, _ = proj_in.shape
        h = self.layout.num_heads
        pattern = s.get("pattern")
        if block.needs_pattern and pattern is None:
            q, k = s["q"].float(), s["k"].float()
            if not block.full_pattern:
                q = q[:, :, :1]
            pattern = ((q * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        values = None
        if block.needs_v:
            values = s["qkv"].reshape(b, n, 3, h, -1)[:, :, 2].transpose(1, 2)
        z = s["z"].reshape(b, n, h, -1).transpose(1, 2) if "z" in s else None
        mixed = proj_in.reshape(b, n, h, -1).transpose(1, 2)
        self._finish(
            block,
            {"q": s.get("q"), "k": s.get("k"), "v": values, "z": z, "pattern": pattern},
            mixed,
            attn.proj.weight,
        )

    # ------------------------------------------------------------------ torchvision

    def _hook_torchvision(self, block: _Block) -> None:
        module = self.layout.block(self.model, block.index)
        self._residual_hooks(block, module, module.ln_2)
        if not block.needs_attention:
            return
        attn = module.self_attention

        def start(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            self._check_call(kwargs, block, "its self_attention")
            x = args[0] if args else kwargs["query"]
            self._finish_torchvision(block, attn, x)

        self._handles.append(attn.register_forward_pre_hook(start, with_kwargs=True))

    def _finish_torchvision(
        self, block: _Block, attn: nn.MultiheadAttention, x: torch.Tensor
    ) -> None:
        b, n, _ = x.shape
        h, d = self.layout.num_heads, self.layout.head_dim
        qkv = F.linear(x.float(), attn.in_proj_weight.float(), attn.in_proj_bias.float())
        qkv = qkv.reshape(b, n, 3, h, d)
        q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
        pattern = None
        mixed = None
        if block.needs_pattern or block.needs_z:
            full = block.full_pattern or block.needs_z
            rows = q if full else q[:, :, :1]
            pattern = ((rows * (float(d) ** -0.5)) @ k.transpose(-2, -1)).softmax(dim=-1)
            if block.needs_z:
                mixed = pattern @ v
        self._finish(
            block,
            {"q": q, "k": k, "v": v, "z": mixed, "pattern": pattern},
            mixed,
            attn.out_proj.weight,
        )

    # ------------------------------------------------------------------ shared

    def _finish(
        self,
        block: _Block,
        tensors: dict[str, torch.Tensor | None],
        mixed: torch.Tensor | None,
        weight: torch.Tensor,
    ) -> None:
        """Reduce and deliver the per-head probes and metrics of one block.

        ``tensors`` holds ``q``, ``k``, ``v``, ``z`` ``(batch, heads, tokens, d_head)`` and the
        ``pattern`` ``(batch, heads, queries, keys)`` as far as needed; ``mixed`` is the
        per-head input of the output projection (``z`` unless a scale norm or gate sits in
        between) and ``weight`` the projection's weight ``(d_model, heads * d_head)``.
        """
        for out in block.head:
            site = out.probe.site[len("attn.") :]
            if site == "head_out":
                assert mixed is not None
                x, shape = self._head_out(mixed, weight, out.reduce)
                features, applied = x, out.reduce
            else:
                tensor = tensors[site]
                assert tensor is not None
                shape = tuple(tensor.shape[1:])
                if site == "pattern":
                    shape = (shape[0], shape[2], shape[2])
                features, applied = reduce_heads(tensor.detach().float(), out.reduce, out.name)
                if site == "pattern" and applied == "cls":
                    applied = "cls_row"
            self.deliver(out.name, features, shape, applied)
        if not block.metrics:
            return
        pattern = tensors["pattern"]
        values: dict[str, torch.Tensor] = {}
        asked = [m for m in block.metrics if m in PATTERN_METRICS]
        if asked:
            assert pattern is not None
            distances = self._token_distances(pattern) if "attention_distance" in asked else None
            values.update(
                am.pattern_metrics(pattern.float(), asked, self.layout.prefix_tokens, distances)
            )
        if "value_norm" in block.metrics:
            assert tensors["v"] is not None
            values["value_norm"] = am.value_norm(tensors["v"].float())
        if "head_out_norm" in block.metrics:
            assert mixed is not None
            if block.gram is None or block.gram.device != weight.device:
                block.gram = am.output_gram(weight, self.layout.num_heads)
            values["head_out_norm"] = am.head_out_norm(mixed.float(), block.gram)
        n_heads = self.layout.num_heads
        for metric in block.metrics:
            for name in block.metric_names[metric]:
                self.deliver(name, values[metric], (n_heads,), "none")

    def _head_out(
        self, mixed: torch.Tensor, weight: torch.Tensor, how: str
    ) -> tuple[torch.Tensor, tuple[int, ...]]:
        """Each head's contribution ``mixed_h W_O,h^T``, reduced over tokens as ``how`` says."""
        b, h, n, d = mixed.shape
        w = weight.reshape(weight.shape[0], h, d).permute(1, 2, 0)  # (heads, d_head, d_model)
        shape = (h, n, weight.shape[0])
        if how == "cls":
            return (mixed[:, :, :1] @ w)[:, :, 0].float(), shape
        if how == "mean":
            return (mixed.mean(dim=2, keepdim=True) @ w)[:, :, 0].float(), shape
        full = (mixed @ w).float()
        return reduce_heads(full, how, "head_out")[0], shape

    def _token_distances(self, pattern: torch.Tensor) -> torch.Tensor:
        assert self.grid is not None
        n_patches = pattern.shape[-1] - self.layout.prefix_tokens
        if self.grid[0] * self.grid[1] != n_patches:
            raise LayerError(
                f"model {self.model_name!r}: {n_patches} patch tokens do not form the "
                f"{self.grid[0]} x {self.grid[1]} patch grid of the input; attention_distance "
                "needs one token per patch"
            )
        key = (self.grid, pattern.device)
        dist = self._distances.get(key)
        if dist is None:
            dist = self._distances[key] = am.patch_distances(
                self.grid, self.layout.patch_size, self.layout.prefix_tokens, pattern.device
            )
        return dist
