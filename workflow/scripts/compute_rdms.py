"""Rule compute_rdms: the RDMs of every layer of one model on one stimulus set."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))
from actpipe import pipeline  # noqa: E402
from actpipe.similarity import compute_rdms  # noqa: E402
from actpipe.similarity.run import blas_threads  # noqa: E402

with pipeline.logging_to(snakemake.log[0]), blas_threads(snakemake.threads):
    compute_rdms(
        snakemake.input.activations,
        snakemake.output[0],
        model=snakemake.wildcards.model,
        stimuli=snakemake.input.stimuli,
        options=dict(snakemake.params.options),
        stimulus_set=snakemake.wildcards.stimset,
    )
