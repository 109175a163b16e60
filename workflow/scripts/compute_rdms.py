"""Rule compute_rdms: the RDMs of every layer of one model on one stimulus set."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from actpipe.logs import logging_to
from actpipe.similarity import compute_rdms
from actpipe.similarity.run import blas_threads

with logging_to(snakemake.log[0]), blas_threads(snakemake.threads):
    compute_rdms(
        snakemake.input.activations,
        snakemake.output[0],
        model=snakemake.wildcards.model,
        stimuli=snakemake.input.stimuli,
        options={**snakemake.params.options, **vars(snakemake.params.run)},
        stimulus_set=snakemake.wildcards.stimset,
    )
