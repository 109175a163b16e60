"""Streaming mini-batch k-means: the layer is read in blocks, never held whole."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..features import Rows, rebatch, sample_size
from .base import ClusterMethod, ClusterResult, assign_nearest


def epoch_order(n_units: int, segment: int, rng: np.random.Generator) -> np.ndarray:
    """Units in a seeded order that keeps runs of ``segment`` consecutive units together.

    Runs keep reads contiguous on disk while batches still mix distant parts of the layer.
    """
    starts = np.arange(0, n_units, segment)
    rng.shuffle(starts)
    return np.concatenate([np.arange(s, min(s + segment, n_units)) for s in starts])


class MiniBatchKMeansMethod(ClusterMethod):
    """:class:`sklearn.cluster.MiniBatchKMeans` fed by ``partial_fit``, one batch at a time.

    1. Initial centres: k-means (``n_init`` restarts) on a seeded sample of ``init_sample``
       rows (at least 3k; at most 64 MB of them), read by stimulus id, not the whole layer.
    2. ``n_epochs`` passes; each visits the layer in a seeded order of runs of stimuli and
       calls ``partial_fit`` on consecutive batches of ``batch_size`` rows (at least ``k``;
       a short last batch joins the one before). Batches do not depend on how the file is
       read, so the result does not depend on the read block size.
    3. A last streaming pass labels every row with its nearest centre.
    """

    name = "minibatch_kmeans"
    streaming = True

    def fit(self, rows: Rows) -> ClusterResult:
        from sklearn.cluster import KMeans, MiniBatchKMeans

        from .base import check_distinct

        k = self.check_k(rows.n, rows.where)
        batch_size = max(int(self.options.get("batch_size", 1024)), k)
        n_epochs = int(self.options.get("n_epochs", 3))
        n_init = int(self.options.get("n_init", 3))
        init_rows = min(
            rows.n, sample_size(self.options.get("init_sample", 10000), rows.dim, 3 * k)
        )
        _, sample = rows.sample(init_rows, self.seed)
        check_distinct(sample, k, rows.where + " (initialisation sample)")
        init = KMeans(n_clusters=k, n_init=n_init, random_state=self.seed).fit(sample)
        init_rows = int(sample.shape[0])
        del sample
        model = MiniBatchKMeans(
            n_clusters=k,
            init=init.cluster_centers_,
            n_init=1,
            batch_size=batch_size,
            random_state=self.seed,
        )
        rng = np.random.default_rng(self.seed)
        segment = max(1, batch_size // 16)
        n_batches = 0
        for _ in range(n_epochs):
            order = epoch_order(rows.n_units, segment, rng)
            blocks: Iterator[np.ndarray] = (X for _, X in rows.blocks(order))
            for batch in rebatch(blocks, batch_size, minimum=k):
                model.partial_fit(batch)
                n_batches += 1
        centres = np.asarray(model.cluster_centers_, dtype=np.float64)
        labels = assign_nearest(rows, centres)
        return ClusterResult(
            labels,
            centres,
            {
                "batch_size": batch_size,
                "n_epochs": n_epochs,
                "n_batches": n_batches,
                "init_sample": init_rows,
                "n_init": n_init,
            },
        )
