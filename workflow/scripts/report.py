"""Rule report: one Markdown summary of every clustering of the run."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))
from actpipe import pipeline  # noqa: E402

with pipeline.logging_to(snakemake.log[0]):
    pipeline.report(
        metadata_files=[f for f in snakemake.input if f.endswith("metadata.json")],
        output=snakemake.output[0],
        similarity_files=[f for f in snakemake.input if f.endswith("compare.h5")],
    )
