# svbench: the study as a Snakemake workflow. The workflow lives in workflow/; this file makes a bare
# `snakemake` in the repository root run it (an include alone has no default target).
include: "workflow/Snakefile"


rule default:
    default_target: True
    input:
        rules.all.input,
