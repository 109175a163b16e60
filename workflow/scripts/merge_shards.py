"""Rule merge_shards: one per-model file over the shards, through virtual datasets."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from actpipe.logs import logging_to
from actpipe.storage import merge_shards

with logging_to(snakemake.log[0]):
    merge_shards(list(snakemake.input), snakemake.output[0], snakemake.wildcards.model)
