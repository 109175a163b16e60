# One job per (stimulus set, model with attention metrics): layer x head tables of each metric.


rule summarise_attention:
    input:
        activations=get_activation_file,
    output:
        "results/attention/{stimset}/{model}.json",
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
