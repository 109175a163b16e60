# One job per (stimulus set, model, parameter set): cluster paths, transitions, centroids,
# metadata and the quality table (schemas in docs/clustering.md).


rule aggregate_clusters:
    input:
        layers=get_layer_cluster_files,
        activations=get_activation_file,
        stimuli=get_stimulus_dir,
    output:
        **aggregate_outputs(),
    log:
        "logs/aggregate_clusters/{stimset}/{model}/{pset}.log",
    benchmark:
        "logs/benchmarks/aggregate_clusters/{stimset}/{model}/{pset}.tsv"
    localrule: True
    conda:
        "../../envs/clustering.yaml"
    params:
        centroids_json_max_values=config["clustering"]["centroids_json_max_values"],
        labels_state=get_labels_state,
        checksum_cache=".snakemake/actpipe/sha256",
        version=ACTPIPE_VERSION,
    script:
        "../scripts/aggregate_clusters.py"


# One Markdown report of the whole run: what the clusters of each layer agree with.
rule write_report:
    input:
        unpack(get_report_inputs),
    output:
        report(
            "results/report.md", caption="../report/report_md.rst", category="Report"
        ),
    log:
        "logs/write_report.log",
    benchmark:
        "logs/benchmarks/write_report.tsv"
    localrule: True
    conda:
        "../../envs/clustering.yaml"
    params:
        version=ACTPIPE_VERSION,
    script:
        "../scripts/write_report.py"
