"""Rule compute_gradients: one model's gradients on one stimulus set -> HDF5."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from actpipe.extraction import ExtractionOptions
from actpipe.gradients import GradientOptions, compute_gradients
from actpipe.logs import logging_to
from actpipe.models import ModelSpec
from actpipe.stimuli import load_stimulus_folder

with logging_to(snakemake.log[0]):
    compute_gradients(
        ModelSpec.from_config(snakemake.wildcards.model, snakemake.params.model_block),
        load_stimulus_folder(snakemake.input.stimuli, snakemake.params.stimulus_options),
        snakemake.output[0],
        ExtractionOptions.from_config(
            {**snakemake.params.extraction, **vars(snakemake.params.run)}, snakemake.params.storage
        ),
        GradientOptions.from_config(
            snakemake.params.gradients, f"models.{snakemake.wildcards.model}.gradients"
        ),
        stimulus_set=snakemake.wildcards.stimset,
        threads=snakemake.threads,
    )
