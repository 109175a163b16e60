"""Rule export_digits_cnn: the trained digits CNN as ONNX, its layers as named tensors."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from actpipe.logs import logging_to
from actpipe.models.digits_cnn import export_digits_cnn

with logging_to(snakemake.log[0]):
    export_digits_cnn(snakemake.input.weights, snakemake.input.metadata, snakemake.output[0])
