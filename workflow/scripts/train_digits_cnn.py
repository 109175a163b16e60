"""Rule train_digits_cnn: the digits CNN of the default config -> weights + metadata JSON."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))
from actpipe import pipeline  # noqa: E402

with pipeline.logging_to(snakemake.log[0]):
    pipeline.train_digits(
        weights=snakemake.output.weights,
        metadata=snakemake.output.metadata,
        params=snakemake.params.training,
    )
