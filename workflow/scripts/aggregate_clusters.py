"""Rule aggregate_clusters: paths, transitions, centroids, metadata and quality table."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))
from actpipe import pipeline  # noqa: E402

with pipeline.logging_to(snakemake.log[0]):
    pipeline.aggregate(
        layer_files=list(snakemake.input.layers),
        activations=snakemake.input.activations,
        out_dir=Path(snakemake.output.metadata).parent,
        context={"stimulus_set": snakemake.wildcards.stimset},
        stimuli=snakemake.input.stimuli,
        centroids_json_max_values=snakemake.params.centroids_json_max_values,
    )
