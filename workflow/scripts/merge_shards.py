"""Rule merge_shards: one per-model file over the shards, through virtual datasets."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))
from actpipe import pipeline  # noqa: E402

with pipeline.logging_to(snakemake.log[0]):
    pipeline.merge(list(snakemake.input), snakemake.output[0], snakemake.wildcards.model)
