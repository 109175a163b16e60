# Generated stimulus sets become folders of PNGs plus labels.csv, like any stimulus folder.


rule materialise_stimuli:
    output:
        directory("results/stimuli/{stimset}"),
    log:
        "logs/materialise_stimuli/{stimset}.log",
    benchmark:
        "logs/benchmarks/materialise_stimuli/{stimset}.tsv"
    localrule: True
    conda:
        "../../envs/stimuli.yaml"
    params:
        spec=get_stimulus_spec,
        version=ACTPIPE_VERSION,
    script:
        "../scripts/materialise_stimuli.py"
