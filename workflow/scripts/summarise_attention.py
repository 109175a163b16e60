"""Rule summarise_attention: block x head tables of one model's attention metrics, and the
site's heatmaps of them."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from actpipe.attention import summarise_attention
from actpipe.logs import logging_to

with logging_to(snakemake.log[0]):
    summarise_attention(
        snakemake.input.activations,
        snakemake.wildcards.model,
        snakemake.output.summary,
        snakemake.output.maps,
    )
