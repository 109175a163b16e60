# One job per (stimulus set, model): all layers in one forward pass, then one joined file per set.
# Every model entry is checked before any job starts (onstart handler in models.smk).


rule extract_activations:
    input:
        stimuli=get_stimulus_dir,
        model_files=get_model_files,
    output:
        "results/activations/{stimset}/{model}.h5",
    log:
        "logs/extract_activations/{stimset}/{model}.log",
    benchmark:
        "logs/benchmarks/extract_activations/{stimset}/{model}.tsv"
    wildcard_constraints:
        stimset=alternation(UNSHARDED_SETS),
    conda:
        "../../envs/extraction.yaml"
    threads: extraction_resources("cpus", 2)
    resources:
        gpu=extraction_resources("gpu", 0),
        gpu_jobs=uses_gpu,
        mem_mb=extraction_resources("mem_mb", 8000),
        runtime=extraction_resources("runtime", 60),
    params:
        model_block=get_model_params,
        stimulus_options=get_folder_options,
        stimulus_listing=get_stimulus_listing,
        extraction=EXTRACTION,
        run=EXTRACTION_RUN_SETTINGS,
        storage=STORAGE,
        cache_dir=ONNX_CACHE,
        version=ACTPIPE_VERSION,
    script:
        "../scripts/extract_activations.py"


rule extract_activations_shard:
    input:
        stimuli=get_stimulus_dir,
        model_files=get_model_files,
    output:
        "results/activations/{stimset}/shards/{model}/shard{shard}.h5",
    log:
        "logs/extract_activations/{stimset}/{model}/shard{shard}.log",
    benchmark:
        "logs/benchmarks/extract_activations/{stimset}/{model}/shard{shard}.tsv"
    wildcard_constraints:
        stimset=alternation(SHARDED_SETS),
        shard=r"\d+",
    conda:
        "../../envs/extraction.yaml"
    threads: extraction_resources("cpus", 2)
    resources:
        gpu=extraction_resources("gpu", 0),
        gpu_jobs=uses_gpu,
        mem_mb=extraction_resources("mem_mb", 8000),
        runtime=extraction_resources("runtime", 60),
    params:
        model_block=get_model_params,
        stimulus_options=get_folder_options,
        stimulus_listing=get_stimulus_listing,
        extraction=EXTRACTION,
        run=EXTRACTION_RUN_SETTINGS,
        storage=STORAGE,
        rows=get_shard_rows,
        cache_dir=ONNX_CACHE,
        version=ACTPIPE_VERSION,
    script:
        "../scripts/extract_activations.py"


rule merge_shards:
    input:
        get_shard_files,
    output:
        "results/activations/{stimset}/{model}.h5",
    log:
        "logs/merge_shards/{stimset}/{model}.log",
    benchmark:
        "logs/benchmarks/merge_shards/{stimset}/{model}.tsv"
    wildcard_constraints:
        stimset=alternation(SHARDED_SETS),
    localrule: True
    conda:
        "../../envs/extraction.yaml"
    params:
        version=ACTPIPE_VERSION,
    script:
        "../scripts/merge_shards.py"


rule join_activations:
    input:
        get_set_model_files,
    output:
        f"results/activations/{PREFIX}_{{stimset}}.h5",
    log:
        "logs/join_activations/{stimset}.log",
    benchmark:
        "logs/benchmarks/join_activations/{stimset}.tsv"
    localrule: True
    conda:
        "../../envs/extraction.yaml"
    params:
        models=list(MODELS),
        version=ACTPIPE_VERSION,
    script:
        "../scripts/join_activations.py"
