# The browsable site of the run's results (results/site/index.html, docs/site.md): thumbnails
# once per stimulus set, each example's distance to its centroid per clustering, the site.


rule make_thumbnails:
    input:
        get_stimulus_dir,
    output:
        directory(f"{THUMBNAILS}/{{stimset}}"),
    log:
        "logs/make_thumbnails/{stimset}.log",
    benchmark:
        "logs/benchmarks/make_thumbnails/{stimset}.tsv"
    localrule: True
    conda:
        "../../envs/site.yaml"
    threads: 2
    params:
        options=THUMBNAIL_OPTIONS,
        stimulus_options=get_folder_options,
        stimulus_listing=get_stimulus_listing,
        version=ACTPIPE_VERSION,
    script:
        "../scripts/make_thumbnails.py"


rule member_distances:
    input:
        unpack(get_distance_inputs),
    output:
        f"results/clusters/{{stimset}}/{{model}}/{{pset}}/{MEMBER_DISTANCES}",
    log:
        "logs/member_distances/{stimset}/{model}/{pset}.log",
    benchmark:
        "logs/benchmarks/member_distances/{stimset}/{model}/{pset}.tsv"
    conda:
        "../../envs/clustering.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        version=ACTPIPE_VERSION,
    script:
        "../scripts/member_distances.py"


rule build_site:
    input:
        unpack(get_site_inputs),
    output:
        report(
            directory("results/site"),
            htmlindex="index.html",
            caption="../report/site.rst",
            category="Site",
        ),
    log:
        "logs/build_site.log",
    benchmark:
        "logs/benchmarks/build_site.tsv"
    localrule: True
    conda:
        "../../envs/site.yaml"
    threads: 2
    params:
        options=SITE,
        runs=site_runs(),
        thumbnails=THUMBNAILS,
        version=ACTPIPE_VERSION,
    script:
        "../scripts/build_site.py"
