"""Rule compare_layers: RSA and linear CKA between every (model, layer) pair of a set."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from actpipe.logs import logging_to
from actpipe.similarity import compare_layers
from actpipe.similarity.run import blas_threads

with logging_to(snakemake.log[0]), blas_threads(snakemake.threads):
    compare_layers(
        list(snakemake.input.rdms),
        list(snakemake.input.activations),
        snakemake.output.h5,
        snakemake.output.tsv,
        options={**snakemake.params.options, **vars(snakemake.params.run)},
        stimulus_set=snakemake.wildcards.stimset,
    )
