# One job per (stimulus set, model, parameter set): cluster paths, centroids, metadata.


rule aggregate_clusters:
    input:
        layers=get_layer_cluster_files,
        activations=get_activation_file,
    output:
        metadata="results/clusters/{stimset}/{model}/{pset}/metadata.json",
        paths="results/clusters/{stimset}/{model}/{pset}/paths.json",
        centroids="results/clusters/{stimset}/{model}/{pset}/centroids.json",
    log:
        "logs/aggregate_clusters/{stimset}/{model}/{pset}.log",
    benchmark:
        "logs/benchmarks/aggregate_clusters/{stimset}/{model}/{pset}.tsv"
    localrule: True
    conda:
        "../../envs/clustering.yaml"
    params:
        version=ACTPIPE_VERSION,
    script:
        "../scripts/aggregate_clusters.py"
