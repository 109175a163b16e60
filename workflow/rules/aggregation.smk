# One job per (stimulus set, model, parameter set): cluster paths, transitions, centroids,
# metadata and the quality table (schemas in docs/clustering.md).


rule aggregate_clusters:
    input:
        layers=get_layer_cluster_files,
        activations=get_activation_file,
        stimuli=get_stimulus_dir,
    output:
        paths="results/clusters/{stimset}/{model}/{pset}/paths.json",
        transitions="results/clusters/{stimset}/{model}/{pset}/transitions.json",
        centroids="results/clusters/{stimset}/{model}/{pset}/centroids.json",
        centroids_h5="results/clusters/{stimset}/{model}/{pset}/centroids.h5",
        metadata="results/clusters/{stimset}/{model}/{pset}/metadata.json",
        quality=report(
            "results/clusters/{stimset}/{model}/{pset}/quality.tsv",
            caption="../report/quality.rst",
            category="Quality",
            subcategory="{stimset}",
            labels={"model": "{model}", "parameter set": "{pset}"},
        ),
    log:
        "logs/aggregate_clusters/{stimset}/{model}/{pset}.log",
    benchmark:
        "logs/benchmarks/aggregate_clusters/{stimset}/{model}/{pset}.tsv"
    localrule: True
    conda:
        "../../envs/clustering.yaml"
    params:
        centroids_json_max_values=config["clustering"]["centroids_json_max_values"],
        version=ACTPIPE_VERSION,
    script:
        "../scripts/aggregate_clusters.py"


# One Markdown report of the whole run: what the clusters of each layer agree with.
rule report:
    input:
        get_report_inputs,
    output:
        report(
            "results/report.md", caption="../report/report_md.rst", category="Report"
        ),
    log:
        "logs/report.log",
    benchmark:
        "logs/benchmarks/report.tsv"
    localrule: True
    conda:
        "../../envs/clustering.yaml"
    params:
        version=ACTPIPE_VERSION,
    script:
        "../scripts/report.py"
