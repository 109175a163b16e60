"""Rule cluster_layer: cluster one layer with one parameter set."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))
from actpipe import pipeline  # noqa: E402

with pipeline.logging_to(snakemake.log[0]):
    pipeline.cluster(
        activations=snakemake.input.activations,
        model=snakemake.wildcards.model,
        layer=snakemake.wildcards.layer,
        parameter_set=snakemake.wildcards.pset,
        params=dict(snakemake.params.params),
        output=snakemake.output[0],
        gradients=snakemake.input.get("gradients"),
    )
