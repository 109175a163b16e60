# One job per (stimulus set, model, parameter set): every layer clustered in turn (one file per
# layer, with each example's distance to its centroid), then the cluster paths, transitions,
# centroids, metadata, quality table and distances (schemas in docs/clustering.md).


rule cluster_paths:
    input:
        unpack(get_cluster_inputs),
    output:
        **cluster_paths_outputs(),
    log:
        "logs/cluster_paths/{stimset}/{model}/{pset}.log",
    benchmark:
        "logs/benchmarks/cluster_paths/{stimset}/{model}/{pset}.tsv"
    conda:
        "../../envs/clustering.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=get_clustering_runtime,
    params:
        layers=get_model_layers,
        params=get_parameter_set,
        run=get_parameter_set_run,
        centroids_json_max_values=config["clustering"]["centroids_json_max_values"],
        labels_state=get_labels_state,
        checksum_cache=".snakemake/actpipe/sha256",
        version=ACTPIPE_VERSION,
    script:
        "../scripts/cluster_paths.py"
