# One job per (stimulus set, model with attention metrics): block x head tables of each metric
# for the report, and the heatmaps of the site's transformer page (docs/transformers.md).


rule summarise_attention:
    input:
        activations=get_activation_file,
    output:
        summary="results/transformer/{stimset}/{model}/summary.json",
        maps=directory("results/transformer/{stimset}/{model}/maps"),
    log:
        "logs/summarise_attention/{stimset}/{model}.log",
    benchmark:
        "logs/benchmarks/summarise_attention/{stimset}/{model}.tsv"
    wildcard_constraints:
        model=alternation(ATTENTION_MODELS),
    localrule: True
    conda:
        "../../envs/clustering.yaml"
    params:
        version=ACTPIPE_VERSION,
    script:
        "../scripts/summarise_attention.py"
