"""Rule cluster_layer: cluster one layer with one parameter set."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from actpipe.clustering import cluster_layer
from actpipe.logs import logging_to
from actpipe.names import layer_name

with logging_to(snakemake.log[0]):
    cluster_layer(
        snakemake.input.activations,
        snakemake.wildcards.model,
        layer_name(snakemake.wildcards.layer),
        {**snakemake.params.params, **vars(snakemake.params.run)},
        snakemake.output[0],
        snakemake.wildcards.pset,
        snakemake.input.get("gradients"),
    )
