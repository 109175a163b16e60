"""Rules extract_activations(_shard): one model on one stimulus set (or shard) -> HDF5."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from actpipe.extraction import ExtractionOptions, extract_activations
from actpipe.logs import logging_to
from actpipe.models import ModelSpec
from actpipe.stimuli import load_stimulus_folder

with logging_to(snakemake.log[0]):
    extract_activations(
        ModelSpec.from_config(snakemake.wildcards.model, snakemake.params.model_block),
        load_stimulus_folder(snakemake.input.stimuli, snakemake.params.stimulus_options),
        snakemake.output[0],
        ExtractionOptions.from_config(
            {**snakemake.params.extraction, **vars(snakemake.params.run)}, snakemake.params.storage
        ),
        stimulus_set=snakemake.wildcards.stimset,
        cache_dir=snakemake.params.cache_dir,
        threads=snakemake.threads,
        rows=snakemake.params.get("rows"),
    )
