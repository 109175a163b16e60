"""Rules extract_activations(_shard): one model on one stimulus set (or shard) -> HDF5."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))
from actpipe import pipeline  # noqa: E402

with pipeline.logging_to(snakemake.log[0]):
    pipeline.extract(
        set_name=snakemake.wildcards.stimset,
        stimulus_dir=snakemake.input.stimuli,
        model_name=snakemake.wildcards.model,
        model_block=snakemake.params.model_block,
        extraction=snakemake.params.extraction,
        storage=snakemake.params.storage,
        output=snakemake.output[0],
        threads=snakemake.threads,
        rows=snakemake.params.get("rows"),
        cache_dir=snakemake.params.get("cache_dir"),
    )
