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
