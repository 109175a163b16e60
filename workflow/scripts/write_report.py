"""Rule write_report: one Markdown summary of every clustering of the run."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from actpipe.logs import logging_to
from actpipe.report import write_report

with logging_to(snakemake.log[0]):
    write_report(
        [Path(f).parent for f in snakemake.input.metadata],
        snakemake.output[0],
        list(snakemake.input.similarity),
    )
