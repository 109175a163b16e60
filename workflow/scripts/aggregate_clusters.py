"""Rule aggregate_clusters: paths, transitions, centroids, metadata and quality table."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from actpipe.aggregation import aggregate_clusters
from actpipe.logs import logging_to

with logging_to(snakemake.log[0]):
    aggregate_clusters(
        list(snakemake.input.layers),
        Path(snakemake.output.metadata).parent,
        snakemake.input.activations,
        snakemake.input.stimuli,
        {"stimulus_set": snakemake.wildcards.stimset},
        snakemake.params.centroids_json_max_values,
        snakemake.params.checksum_cache,
    )
