# actpipe: activations of a model panel on stimulus folders -> HDF5 -> clusters -> cluster paths.
#
#   snakemake --cores 8                      # local run of config/config.yaml
#   snakemake --profile profiles/slurm       # the same on a SLURM cluster


from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"


# GPU jobs are counted per machine (local runs: one at a time via profiles/default), not
# across the cluster: the SLURM executor hands GPUs to jobs itself.
resource_scopes:
    gpu="local",


# A wildcard can only take a configured name.
wildcard_constraints:
    stimset=alternation(STIMULI),
    model=alternation(MODELS),
    pset=alternation(PARAMETER_SETS),
    layer=alternation(all_layers()),


include: "workflow/rules/stimuli.smk"
include: "workflow/rules/extraction.smk"
include: "workflow/rules/clustering.smk"
include: "workflow/rules/aggregation.smk"


rule all:
    default_target: True
    input:
        get_final_output(),
