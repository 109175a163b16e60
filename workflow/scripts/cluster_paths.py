"""Rule cluster_paths: every layer of one model clustered with one parameter set, then the
cluster paths and the folder's other files."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from actpipe.aggregation import cluster_paths
from actpipe.logs import logging_to

with logging_to(snakemake.log[0]):
    cluster_paths(
        snakemake.input.activations,
        snakemake.wildcards.model,
        list(snakemake.params.layers),
        {**snakemake.params.params, **vars(snakemake.params.run)},
        Path(snakemake.output.metadata).parent,
        snakemake.wildcards.pset,
        snakemake.input.stimuli,
        {"stimulus_set": snakemake.wildcards.stimset},
        snakemake.input.get("gradients"),
        snakemake.params.centroids_json_max_values,
        snakemake.params.checksum_cache,
    )
