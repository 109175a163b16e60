"""Probe names: what can be captured inside a transformer block, and the attention metrics.

Standard library only: model blocks are parsed, and reports written, without torch.

A *probe* is a named point inside block ``i`` of a Vision Transformer, named as the
interpretability tools name them (shapes per exposure, ``d`` the model width):

- ``blocks.{i}.resid_pre``: the residual stream entering the block, ``(tokens, d)``;
- ``blocks.{i}.resid_mid``: the residual stream after the attention branch, ``(tokens, d)``;
- ``blocks.{i}.resid_post``: the residual stream leaving the block, ``(tokens, d)``;
- ``blocks.{i}.attn.pattern``: softmax attention weights, ``(heads, queries, keys)``;
- ``blocks.{i}.attn.q``, ``.k``, ``.v``: queries (after q-norm, before scaling), keys (after
  k-norm) and values, ``(heads, tokens, d_head)``;
- ``blocks.{i}.attn.z``: the per-head mix of values ``z_q = sum_k A_qk v_k``,
  ``(heads, tokens, d_head)``;
- ``blocks.{i}.attn.head_out``: each head's share of the attention output ``z_h W_O,h^T``
  (its slice of the output projection), ``(heads, tokens, d)``;
- ``blocks.{i}.attn.{metric}``: one number per head for every metric of :data:`METRICS`.

Exact definitions and conventions: ``docs/transformers.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RESIDUAL_SITES = ("resid_pre", "resid_mid", "resid_post")
"""Probes of the residual stream: ``(tokens, d_model)`` per exposure, reduced like a layer."""
HEAD_SITES = ("attn.pattern", "attn.q", "attn.k", "attn.v", "attn.z", "attn.head_out")
"""Probes with a head axis: stored as ``(n_stimuli, n_replicates, heads, dim)``."""

METRICS: dict[str, str] = {
    "attention_entropy": "entropy of each query's attention over the keys (nats), mean over "
    "queries",
    "attention_entropy_norm": "attention_entropy divided by log(number of keys): 0 one key, "
    "1 uniform",
    "attention_distance": "attention-weighted distance (pixels) from each patch query to the "
    "patch keys, mean over patch queries",
    "sink_share": "attention mass on the prefix tokens (class, distillation, register), mean "
    "over queries",
    "density": "share of the keys needed to hold 90% of a query's attention mass, mean over "
    "queries",
    "value_norm": "L2 norm of the head's value vectors, mean over tokens",
    "head_out_norm": "L2 norm of the head's output ||sum_k A_qk v_k W_O,h^T||, mean over queries",
}
"""Attention metrics computed during the forward pass, one number per head and exposure."""
METRIC_SITES = tuple(f"attn.{metric}" for metric in METRICS)
DENSITY_MASS = 0.9
"""The share of a query's attention mass that ``density`` counts keys for."""

PATTERN_REDUCTIONS = ("cls_row",)
"""Reductions only an attention pattern takes, besides those of every layer: ``cls_row``
(the class token's query row; ``cls`` is the same for a pattern)."""
CLS_ROW_REDUCTIONS = ("cls_row", "cls", "flatten")
"""Reductions of an attention pattern that keep the class token's query row (its attention
to every key), which the results site lays over the example's image."""

_PROBE_RE = re.compile(
    r"^blocks\.(0|[1-9][0-9]*)\.("
    + "|".join(re.escape(site) for site in (*RESIDUAL_SITES, *HEAD_SITES, *METRIC_SITES))
    + r")$"
)


@dataclass(frozen=True)
class Probe:
    """One probe: a block index and a site (``resid_pre``, ``attn.z``, ``attn.density``...)."""

    block: int
    site: str

    @property
    def name(self) -> str:
        return f"blocks.{self.block}.{self.site}"

    @property
    def kind(self) -> str:
        """``residual``, ``head`` (a per-head tensor) or ``metric`` (one number per head)."""
        if self.site in RESIDUAL_SITES:
            return "residual"
        return "head" if self.site in HEAD_SITES else "metric"

    @property
    def metric(self) -> str | None:
        """The metric's name, for a metric probe."""
        return self.site[len("attn.") :] if self.kind == "metric" else None

    @property
    def extra_reductions(self) -> tuple[str, ...]:
        """Reductions this probe takes besides those of every layer."""
        return PATTERN_REDUCTIONS if self.site == "attn.pattern" else ()


def parse_probe(name: str) -> Probe | None:
    """The probe a layer name names (without a head selector), or ``None``."""
    match = _PROBE_RE.match(name)
    if match is None:
        return None
    return Probe(int(match.group(1)), match.group(2))


def is_probe(name: str) -> bool:
    return parse_probe(name) is not None


def metric_probe(block: int, metric: str) -> Probe:
    """The probe that stores ``metric`` of block ``block``: ``blocks.{block}.attn.{metric}``."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {list(METRICS)}")
    return Probe(int(block), f"attn.{metric}")


def probe_gradients_message(where: str, probes: list[str]) -> str:
    """Why a gradient pass refuses probe layers, and what to do instead."""
    return (
        f"{where}: gradients are taken with respect to module outputs, and "
        f"{', '.join(map(repr, probes))} {'is a probe' if len(probes) == 1 else 'are probes'} "
        "inside the attention block, not a module output; list modules instead (the output "
        "of module blocks.{i} is blocks.{i}.resid_post), for example in a second model entry "
        "of the same network for the gradients, or set 'gradients: false'"
    )
