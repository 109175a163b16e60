# One job per (stimulus set, model with gradients): every configured layer's gradient and
# activation x gradient in one forward and one backward pass per batch, with the extraction's
# stimulus order, replicates, jitter and seeds (docs/gradients.md).


rule compute_gradients:
    input:
        stimuli=get_stimulus_dir,
        model_files=get_model_files,
    output:
        "results/gradients/{stimset}/{model}.h5",
    log:
        "logs/compute_gradients/{stimset}/{model}.log",
    benchmark:
        "logs/benchmarks/compute_gradients/{stimset}/{model}.tsv"
    wildcard_constraints:
        model=alternation(GRADIENT_MODELS),
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
        gradients=get_gradient_settings,
        extraction=EXTRACTION,
        run=EXTRACTION_RUN_SETTINGS,
        storage=STORAGE,
        version=ACTPIPE_VERSION,
    script:
        "../scripts/compute_gradients.py"
