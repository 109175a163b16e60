# Representational similarity (docs/similarity.md), when similarity.enabled: the RDMs of every
# layer per (stimulus set, model), then RSA and linear CKA between every (model, layer) pair
# of a set and each label's theory RDM.


rule compute_rdms:
    input:
        activations=get_activation_file,
        stimuli=get_stimulus_dir,
    output:
        "results/similarity/{stimset}/{model}/rdms.h5",
    log:
        "logs/compute_rdms/{stimset}/{model}.log",
    benchmark:
        "logs/benchmarks/compute_rdms/{stimset}/{model}.tsv"
    conda:
        "../../envs/similarity.yaml"
    threads: 1
    resources:
        mem_mb=similarity_mem_mb("rdms"),
        runtime=60,
    params:
        options=similarity_params("compute_rdms"),
        run=SIMILARITY_RUN,
        version=ACTPIPE_VERSION,
    script:
        "../scripts/compute_rdms.py"


rule compare_layers:
    input:
        rdms=get_set_rdm_files,
        activations=get_set_model_files,
    output:
        h5="results/similarity/{stimset}/compare.h5",
        tsv="results/similarity/{stimset}/compare.tsv",
    log:
        "logs/compare_layers/{stimset}.log",
    benchmark:
        "logs/benchmarks/compare_layers/{stimset}.tsv"
    conda:
        "../../envs/similarity.yaml"
    threads: 2
    resources:
        mem_mb=similarity_mem_mb("compare"),
        runtime=120,
    params:
        options=similarity_params("compare_layers"),
        run=SIMILARITY_RUN,
        version=ACTPIPE_VERSION,
    script:
        "../scripts/compare_layers.py"
