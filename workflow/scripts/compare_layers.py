"""Rule compare_layers: RSA and linear CKA between every (model, layer) pair of a set."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))
from actpipe import pipeline  # noqa: E402
from actpipe.similarity import compare_layers  # noqa: E402
from actpipe.similarity.run import blas_threads  # noqa: E402

with pipeline.logging_to(snakemake.log[0]), blas_threads(snakemake.threads):
    compare_layers(
        list(snakemake.input.rdms),
        list(snakemake.input.activations),
        snakemake.output.h5,
        snakemake.output.tsv,
        options=dict(snakemake.params.options),
        stimulus_set=snakemake.wildcards.stimset,
    )
