"""Rule export_onnx: the trained digits CNN -> ONNX (layers as named tensors)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))
from actpipe import pipeline  # noqa: E402

with pipeline.logging_to(snakemake.log[0]):
    pipeline.export_onnx(
        weights=snakemake.input.weights,
        metadata=snakemake.input.metadata,
        output=snakemake.output[0],
    )
