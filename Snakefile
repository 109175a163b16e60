# actpipe: activations of a model panel on stimulus folders -> HDF5 -> clusters -> cluster paths.
#
#   snakemake --cores 8                      # local run of config/config.yaml
#   snakemake --profile profiles/slurm       # the same on a SLURM cluster


from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/stimuli.smk"
include: "workflow/rules/extraction.smk"
include: "workflow/rules/clustering.smk"
include: "workflow/rules/aggregation.smk"


rule all:
    input:
        get_final_output(),
    default_target: True
