"""Rule train_digits_cnn: the digits CNN of the default config -> weights + metadata JSON."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from actpipe.logs import logging_to
from actpipe.models.digits_cnn import train_digits_cnn

with logging_to(snakemake.log[0]):
    train_digits_cnn(
        snakemake.output.weights, snakemake.output.metadata, **snakemake.params.training
    )
