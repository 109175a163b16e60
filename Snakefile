# actpipe: activations of a model panel on stimulus folders -> HDF5 -> clusters -> cluster paths.
#
#   snakemake --cores 8                      # local run of config/config.yaml
#   snakemake --profile profiles/slurm       # the same on a SLURM cluster


from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


# `gpu_jobs` (1 for a job that asks for a GPU) is counted per machine: local runs take one
# GPU job at a time (profiles/default), while a cluster run submits as many as SLURM accepts
# and the executor hands each job its `gpu` request (sbatch --gpus).
resource_scopes:
    gpu_jobs="local",


# A wildcard can only take a configured name (layers: their layer keys, see actpipe.names).
wildcard_constraints:
    stimset=alternation(STIMULI),
    model=alternation(MODELS),
    pset=alternation(PARAMETER_SETS),


include: "workflow/rules/stimuli.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/extraction.smk"
include: "workflow/rules/gradients.smk"
include: "workflow/rules/clustering.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/site.smk"
include: "workflow/rules/similarity.smk"


rule all:
    default_target: True
    input:
        get_final_output(),
