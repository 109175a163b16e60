"""Rule join_activations: one file per stimulus set linking every model's file."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))
from actpipe import pipeline  # noqa: E402

with pipeline.logging_to(snakemake.log[0]):
    pipeline.join(snakemake.params.models, list(snakemake.input), snakemake.output[0])
