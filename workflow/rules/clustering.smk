# One job per (stimulus set, model, parameter set, layer): labels, centroids, quality scores.


rule cluster_layer:
    input:
        unpack(get_cluster_inputs),
    output:
        "results/clusters/{stimset}/{model}/{pset}/layers/{layer}.h5",
    log:
        "logs/cluster_layer/{stimset}/{model}/{pset}/{layer}.log",
    benchmark:
        "logs/benchmarks/cluster_layer/{stimset}/{model}/{pset}/{layer}.tsv"
    conda:
        "../../envs/clustering.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        params=get_parameter_set,
        run=get_parameter_set_run,
        version=ACTPIPE_VERSION,
    script:
        "../scripts/cluster_layer.py"
