"""Reading the raw rows of one layer for clustering, block by block, never the whole layer.

A *row* (an example) is one stimulus (``replicates='mean'``: the mean over its replicate
exposures) or one exposure (``replicates='each'``: example id ``{stimulus_id}#{replicate}``).
With ``gradients`` (a gradient file of the same stimuli, docs/format.md) the rows are
activation x gradient: the file's stored ``activation_x_gradient`` layer (the product taken
on the layer's full output, then reduced), or, for a file holding only gradients, the
element-wise product of the stored activations and gradients, which is the same thing only
for reductions that keep elements as they are (``flatten``, ``cls``, a 2-D output); a layer
pooled with ``mean`` or ``max`` is then an error. The layer is opened once, as a lazy view
of the reading API (:mod:`actpipe.storage.reader`), so per-model files, joined per-set files
and merged shard files all work; :meth:`LayerSource.close` (or a ``with`` block) closes it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..errors import ClusteringError
from ..storage.format import ACTIVATION_X_GRADIENT
from ..storage.lazy import LayerView, LazyActivations

PathLike = str | os.PathLike[str]
REPLICATE_SEPARATOR = "#"
ELEMENTWISE_REDUCTIONS = ("flatten", "none", "cls")
"""Reductions ``R`` with ``R(a (.) g) = R(a) (.) R(g)``: they select elements, never pool."""


class LayerSource:
    """One layer of one model as float64 example rows ``(n, feature_dim)``."""

    def __init__(
        self,
        activations: PathLike,
        model: str,
        layer: str,
        *,
        replicates: str = "mean",
        gradients: PathLike | None = None,
        block_bytes: int = 32 << 20,
    ) -> None:
        self.activations = Path(activations)
        self.model = model
        self.layer = layer
        self.replicates = replicates
        self.gradients = None if gradients is None else Path(gradients)
        self.block_bytes = int(block_bytes)
        self.where = f"{self.activations}: model {model!r}, layer {layer!r}"
        self._files: list[LazyActivations] = []
        self.view = self._open(self.activations)
        self.stimulus_ids = self.view.stimulus_ids
        self.n_replicates, self.feature_dim = self.view.n_replicates, self.view.feature_dim
        self.gradient_view: LayerView | None = None
        self.stored_product: LayerView | None = None
        self.product: str | None = None
        if self.gradients is not None:
            view = self._check_gradients()
            if view.attrs.get("quantity") == ACTIVATION_X_GRADIENT:
                self.stored_product, self.product = view, "stored"
            else:
                self._check_elementwise(view)
                self.gradient_view, self.product = view, "multiplied"
        self.n_stimuli = len(self.stimulus_ids)
        self.rows_per_stimulus = self.n_replicates if replicates == "each" else 1
        self.n_examples = self.n_stimuli * self.rows_per_stimulus
        if self.n_stimuli == 0:
            raise ClusteringError(f"{self.where}: the layer has no stimuli")

    def _open(self, path: Path) -> LayerView:
        """The layer of ``path`` as one lazy view, kept open until :meth:`close`."""
        acts = LazyActivations(path, models=[self.model], cache_bytes=0)
        self._files.append(acts)
        return acts[self.model].layer(self.layer)

    def close(self) -> None:
        """Close the files of the layer (and of the gradients)."""
        for acts in self._files:
            acts.close()
        self._files = []

    def __enter__(self) -> LayerSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_gradients(self) -> LayerView:
        assert self.gradients is not None
        if not self.gradients.exists():
            raise ClusteringError(
                f"{self.where}: input activations_x_gradients needs the gradient file "
                f"{self.gradients}, which does not exist; produce the gradients first or use "
                "input: activations"
            )
        view = self._open(self.gradients)
        ids = view.stimulus_ids
        shape = (view.n_replicates, view.feature_dim)
        if ids != self.stimulus_ids or shape != (self.n_replicates, self.feature_dim):
            raise ClusteringError(
                f"{self.where}: gradient file {self.gradients} does not match the activations "
                f"(stimulus ids equal: {ids == self.stimulus_ids}; shape {shape} vs "
                f"{(self.n_replicates, self.feature_dim)})"
            )
        mine = self.view.attrs.get("reduce_applied")
        theirs = view.attrs.get("reduce_applied")
        if mine is not None and theirs is not None and mine != theirs:
            raise ClusteringError(
                f"{self.where}: the activations are reduced with {mine!r} but the gradient file "
                f"{self.gradients} with {theirs!r}; compute both with the same model block"
            )
        return view

    def _check_elementwise(self, view: LayerView) -> None:
        """Refuse multiplying pooled activations by pooled gradients (not act x grad)."""
        for what, reduced in (
            ("activations", self.view.attrs.get("reduce_applied")),
            (f"gradients of {self.gradients}", view.attrs.get("reduce_applied")),
        ):
            if reduced is not None and reduced not in ELEMENTWISE_REDUCTIONS:
                raise ClusteringError(
                    f"{self.where}: the {what} are pooled with {reduced!r}, and the product of "
                    f"pooled activations and pooled gradients is not activation x gradient "
                    f"({reduced} of a (.) g over positions); the gradient file holds no "
                    "activation_x_gradient for this layer: add activation_x_gradient to the "
                    "model's gradients.store"
                )

    # ------------------------------------------------------------------ example bookkeeping

    @property
    def example_ids(self) -> list[str]:
        if self.replicates == "mean":
            return list(self.stimulus_ids)
        return [
            f"{sid}{REPLICATE_SEPARATOR}{r}"
            for sid in self.stimulus_ids
            for r in range(self.n_replicates)
        ]

    @property
    def example_stimulus(self) -> np.ndarray:
        """Stimulus row of every example."""
        return np.repeat(np.arange(self.n_stimuli), self.rows_per_stimulus)

    @property
    def example_replicate(self) -> np.ndarray:
        """Replicate of every example (-1: the replicate mean)."""
        if self.replicates == "mean":
            return np.full(self.n_stimuli, -1, dtype=np.int64)
        return np.tile(np.arange(self.n_replicates), self.n_stimuli)

    def examples_of(self, stimulus_rows: np.ndarray) -> np.ndarray:
        """Example indices of the given stimulus rows (each stimulus's rows in order)."""
        r = self.rows_per_stimulus
        return (np.asarray(stimulus_rows, dtype=np.int64)[:, None] * r + np.arange(r)).reshape(-1)

    # ------------------------------------------------------------------ reading

    def _raw_blocks(
        self, view: LayerView, ids: list[str] | None
    ) -> Iterator[tuple[list[str], np.ndarray]]:
        yield from view.blocks(ids, dtype=np.float64, block_bytes=self.block_bytes)

    def _product_blocks(self, ids: list[str] | None) -> Iterator[tuple[list[str], np.ndarray]]:
        """Activations x gradients, re-aligned when the two files are read in other blocks."""
        assert self.gradient_view is not None
        left = self._raw_blocks(self.view, ids)
        right = self._raw_blocks(self.gradient_view, ids)
        pending_a: tuple[list[str], np.ndarray] | None = None
        pending_g: tuple[list[str], np.ndarray] | None = None
        while True:
            if pending_a is None:
                pending_a = next(left, None)
            if pending_g is None:
                pending_g = next(right, None)
            if pending_a is None or pending_g is None:
                if pending_a is not None or pending_g is not None:
                    raise ClusteringError(f"{self.where}: gradient file has fewer rows")
                return
            m = min(len(pending_a[0]), len(pending_g[0]))
            ids_a, a = pending_a[0][:m], pending_a[1][:m]
            if ids_a != pending_g[0][:m]:
                raise ClusteringError(f"{self.where}: gradient rows are in another order")
            yield ids_a, a * pending_g[1][:m]
            pending_a = (pending_a[0][m:], pending_a[1][m:]) if len(pending_a[0]) > m else None
            pending_g = (pending_g[0][m:], pending_g[1][m:]) if len(pending_g[0]) > m else None

    def blocks(
        self, stimulus_rows: Sequence[int] | np.ndarray | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(example_indices, rows)`` of all stimuli, or of ``stimulus_rows`` in order.

        ``rows`` is float64 ``(m, feature_dim)``; replicate means are taken in float64.
        """
        if stimulus_rows is None:
            ids = None
            order = None
        else:
            order = np.asarray(stimulus_rows, dtype=np.int64)
            ids = [self.stimulus_ids[i] for i in order]
        if self.stored_product is not None:
            raw = self._raw_blocks(self.stored_product, ids)
        elif self.gradient_view is not None:
            raw = self._product_blocks(ids)
        else:
            raw = self._raw_blocks(self.view, ids)
        done = 0
        for block_ids, block in raw:
            count = len(block_ids)
            rows = np.arange(done, done + count) if order is None else order[done : done + count]
            done += count
            if self.replicates == "mean":
                values = block[:, 0] if self.n_replicates == 1 else block.mean(axis=1)
            else:
                values = block.reshape(count * self.n_replicates, self.feature_dim)
            yield self.examples_of(rows), values

    def read(self, stimulus_rows: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(example_indices, rows)`` of the given stimulus rows, in one preallocated array."""
        total = len(stimulus_rows) * self.rows_per_stimulus
        examples = np.empty(total, dtype=np.int64)
        values = np.empty((total, self.feature_dim))
        done = 0
        for ex, block in self.blocks(stimulus_rows):
            examples[done : done + len(ex)] = ex
            values[done : done + len(ex)] = block
            done += len(ex)
        return examples, values
