"""Rule materialise_stimuli: write a generated stimulus set as a PNG folder + labels.csv."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from actpipe.logs import logging_to
from actpipe.stimuli import materialise_stimuli

with logging_to(snakemake.log[0]):
    materialise_stimuli(snakemake.params.spec, snakemake.output[0])
