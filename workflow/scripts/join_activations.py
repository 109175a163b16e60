"""Rule join_activations: one file per stimulus set linking every model's file."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from actpipe.logs import logging_to
from actpipe.storage import join_activations

with logging_to(snakemake.log[0]):
    join_activations(
        snakemake.output[0], dict(zip(snakemake.params.models, snakemake.input, strict=True))
    )
