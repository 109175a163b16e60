"""Rule materialise_stimuli: write a generated stimulus set as a PNG folder + labels.csv."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))
from actpipe import pipeline  # noqa: E402

with pipeline.logging_to(snakemake.log[0]):
    pipeline.materialise_set(snakemake.params.spec, snakemake.output[0])
