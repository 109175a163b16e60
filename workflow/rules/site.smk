# The browsable site of the run's results (results/site/index.html, docs/site.md): thumbnails
# once per stimulus set, then the site.


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
