"""Rule build_site: the browsable static site of the run (results/site/index.html)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from actpipe.logs import logging_to
from actpipe.site import SiteOptions, build_site

with logging_to(snakemake.log[0]):
    build_site(
        "results",
        snakemake.output[0],
        runs=[tuple(run) for run in snakemake.params.runs],
        options=SiteOptions.from_config(snakemake.params.options),
        thumbnails=snakemake.params.thumbnails,
        jobs=snakemake.threads,
    )
