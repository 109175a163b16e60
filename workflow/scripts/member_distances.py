"""Rule member_distances: each example's distance to its centroid, per layer of a clustering."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from actpipe.logs import logging_to
from actpipe.site.distances import member_distances

with logging_to(snakemake.log[0]):
    member_distances(
        layer_files=list(snakemake.input.layers),
        activations=snakemake.input.activations,
        output=snakemake.output[0],
        gradients=snakemake.input.get("gradients"),
    )
