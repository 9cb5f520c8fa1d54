# cloudfree: the workflow is workflow/Snakefile (the Snakemake workflow catalog's layout);
# this file keeps `snakemake -c all` and `snakemake -s Snakefile` working from the root.


include: "workflow/Snakefile"


# An included file's rules never become the default target: rule all is named here.
workflow.default_target = "all"
