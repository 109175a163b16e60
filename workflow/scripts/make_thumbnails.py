"""Rule make_thumbnails: one small image per stimulus of a set, and its manifest."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from actpipe.logs import logging_to
from actpipe.site.thumbnails import ThumbnailOptions, make_thumbnails

with logging_to(snakemake.log[0]):
    make_thumbnails(
        snakemake.input[0],
        snakemake.output[0],
        ThumbnailOptions.from_config(snakemake.params.options),
        threads=snakemake.threads,
        stimulus_options=snakemake.params.stimulus_options,
    )
