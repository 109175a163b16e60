"""Attention metrics, computed during the forward pass from one block's attention.

Every function takes one block's tensors for a batch and returns ``(batch, heads)`` float32.
Notation: ``A`` is the attention pattern ``(batch, heads, queries, keys)`` (softmax weights,
each row sums to 1), ``P`` the number of prefix tokens (class, distillation and register
tokens, which come before the patch tokens), ``v`` the values and ``z`` the per-head mix of
values ``(batch, heads, tokens, d_head)``. ``docs/transformers.md`` states the same formulas.

:func:`pattern_metrics` computes several pattern metrics of a block at once, sharing what
they have in common (one pass per quantity over the ``N x N`` maps); the single-metric
functions give the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch

from ..probes import DENSITY_MASS


def attention_entropy(pattern: torch.Tensor) -> torch.Tensor:
    """``mean_q H_q`` with ``H_q = -sum_k A_qk ln A_qk`` in nats (``0 ln 0 = 0``); mean over all
    queries, prefix tokens included."""
    return torch.special.entr(pattern).sum(-1).mean(-1)


def attention_entropy_norm(pattern: torch.Tensor) -> torch.Tensor:
    """``attention_entropy / ln(n_keys)``: 0 when each query attends to one key, 1 when its
    attention is uniform (0 for a single key)."""
    return normalise_entropy(attention_entropy(pattern), pattern.shape[-1])


def normalise_entropy(entropy: torch.Tensor, n_keys: int) -> torch.Tensor:
    """An attention entropy in nats divided by ``ln(n_keys)`` (0 for a single key)."""
    if n_keys < 2:
        return torch.zeros_like(entropy)
    return entropy / math.log(n_keys)


def patch_distances(
    grid: tuple[int, int],
    patch_size: tuple[int, int],
    prefix_tokens: int = 0,
    device: torch.device | None = None,
) -> torch.Tensor:
    """``(tokens, tokens)`` distances in input pixels between patch centres, for ``prefix_tokens``
    tokens without position (their rows and columns are 0) followed by the patches.

    Patch ``j`` (row-major over the grid) sits at row ``j // columns``, column
    ``j % columns``; the distance of patches ``a`` and ``b`` is
    ``sqrt((ph (r_a - r_b))^2 + (pw (c_a - c_b))^2)`` for patches of ``ph`` x ``pw`` pixels.
    """
    rows, cols = grid
    ph, pw = patch_size
    r = torch.arange(rows, dtype=torch.float64).repeat_interleave(cols) * ph
    c = torch.arange(cols, dtype=torch.float64).repeat(rows) * pw
    d = torch.sqrt((r[:, None] - r[None, :]) ** 2 + (c[:, None] - c[None, :]) ** 2)
    n = prefix_tokens + rows * cols
    out = torch.zeros(n, n, dtype=torch.float64)
    out[prefix_tokens:, prefix_tokens:] = d
    return out.to(device=device, dtype=torch.float32)


def _prefix_mass(pattern: torch.Tensor, prefix_tokens: int) -> torch.Tensor:
    """``(..., queries)``: each query's attention mass on the prefix keys."""
    if prefix_tokens == 0:
        return pattern.new_zeros(pattern.shape[:-1])
    return pattern[..., :prefix_tokens].sum(-1)


def attention_distance(
    pattern: torch.Tensor, prefix_tokens: int, distances: torch.Tensor
) -> torch.Tensor:
    """Mean attention distance in pixels, over patch queries and patch keys only.

    For each patch query ``q``: ``D_q = sum_k A_qk d(q, k) / sum_k A_qk`` with ``k`` over the
    patch keys (the attention to prefix tokens, which have no position, is left out and the
    rest renormalised; ``sink_share`` reports it); then the mean of ``D_q`` over the patch
    queries. ``distances`` comes from :func:`patch_distances` (with the same prefix tokens).
    """
    patches = pattern[..., prefix_tokens:, :]
    weighted = (patches * distances[prefix_tokens:]).sum(-1)
    mass = patches[..., prefix_tokens:].sum(-1)
    return (weighted / mass.clamp_min(torch.finfo(mass.dtype).tiny)).mean(-1)


def sink_share(pattern: torch.Tensor, prefix_tokens: int) -> torch.Tensor:
    """``mean_q sum_{k < P} A_qk``: attention mass on the prefix tokens, mean over all queries
    (0 for a model without prefix tokens)."""
    return _prefix_mass(pattern, prefix_tokens).mean(-1)


def density(pattern: torch.Tensor, mass: float = DENSITY_MASS) -> torch.Tensor:
    """Share of the keys needed to hold ``mass`` (90%) of each query's attention, mean over
    all queries.

    For query ``q`` with weights sorted in increasing order ``b_1 <= ... <= b_K`` and partial
    sums ``P_j = b_1 + ... + b_j`` (float32, accumulated in float64): the ``j`` smallest
    weights can be left out while the rest still holds ``mass`` of the row's total ``P_K``
    exactly when ``P_j <= (1 - mass) P_K``, so the fewest keys holding it number
    ``m_q = K - #{j : P_j <= (1 - mass) P_K}``, and ``density_q = m_q / K``. One-hot
    attention gives ``1 / K``; uniform attention ``ceil(mass K) / K``.
    """
    n_keys = pattern.shape[-1]
    if pattern.device.type == "cpu":
        # numpy's vectorised sort is many times faster than torch's for short rows.
        ascending = torch.from_numpy(np.sort(pattern.contiguous().numpy(), axis=-1))
    else:
        ascending = pattern.sort(dim=-1).values
    partial = ascending.cumsum(-1)
    threshold = ((1.0 - mass) * partial[..., -1]).unsqueeze(-1)
    # Partial sums increase along the row: the count of those <= threshold is where the
    # threshold would be inserted, to the right of equal values.
    dropped = torch.searchsorted(partial, threshold, right=True)  # (..., queries, 1)
    n_queries = pattern.shape[-2]
    # mean_q (K - dropped_q) / K, from the exact integer sum over the queries
    total = dropped.sum(dim=(-2, -1)).to(torch.float64)
    return (1.0 - total / (n_keys * n_queries)).to(pattern.dtype)


def pattern_metrics(
    pattern: torch.Tensor,
    names: Iterable[str],
    prefix_tokens: int,
    distances: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The metrics ``names`` of one block's pattern (``attention_entropy``,
    ``attention_entropy_norm``, ``attention_distance`` (needs ``distances``), ``sink_share``,
    ``density``), each ``(batch, heads)``, sharing intermediate results."""
    names = list(names)
    out: dict[str, torch.Tensor] = {}
    if {"attention_entropy", "attention_entropy_norm"} & set(names):
        entropy = attention_entropy(pattern)
        if "attention_entropy" in names:
            out["attention_entropy"] = entropy
        if "attention_entropy_norm" in names:
            out["attention_entropy_norm"] = normalise_entropy(entropy, pattern.shape[-1])
    if "sink_share" in names:
        out["sink_share"] = sink_share(pattern, prefix_tokens)
    if "attention_distance" in names:
        if distances is None:
            raise ValueError("attention_distance needs the patch distances")
        out["attention_distance"] = attention_distance(pattern, prefix_tokens, distances)
    if "density" in names:
        out["density"] = density(pattern)
    unknown = set(names) - set(out)
    if unknown:
        raise ValueError(f"not pattern metrics: {sorted(unknown)}")
    return {name: out[name] for name in names}


def value_norm(values: torch.Tensor) -> torch.Tensor:
    """``mean_k ||v_k||_2``: L2 norm of each head's value vectors, mean over all tokens."""
    return torch.linalg.vector_norm(values, dim=-1).mean(-1)


def output_gram(weight: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``(heads, d_head, d_head)``: ``W_O,h^T W_O,h`` of each head's slice of the output
    projection weight ``(d_model, heads * d_head)``, in float64."""
    d_model = weight.shape[0]
    w = weight.detach().to(torch.float64).reshape(d_model, num_heads, -1).permute(1, 0, 2)
    return w.transpose(1, 2) @ w


def head_out_norm(z: torch.Tensor, gram: torch.Tensor) -> torch.Tensor:
    """``mean_q ||z_q W_O,h^T||_2`` with ``z_q = sum_k A_qk v_k``: the norm of what each head
    writes into the residual stream (before the projection bias and LayerScale), mean over all
    queries. Computed as ``sqrt(z_q G_h z_q^T)`` with ``G_h`` from :func:`output_gram`."""
    g = gram.to(z.dtype)
    squared = ((z @ g.unsqueeze(0)) * z).sum(-1)
    return squared.clamp_min(0).sqrt().mean(-1)
