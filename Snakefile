# cloudfree: cloudy Sentinel-2 time series in, cloud-free ones out.
# `snakemake -c all` runs the embedded default; see README.md.

from snakemake.utils import min_version

min_version("9.0")


# The embedded default unless the user names a config file: a --configfile replaces it
# (no synthetic default region leaks into a run on real data).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/report_common.smk"
include: "workflow/rules/tiles.smk"
include: "workflow/rules/clouds.smk"
include: "workflow/rules/pack.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/infer.smk"
include: "workflow/rules/mosaic.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/report.smk"


# A concatenation of small tables: not worth a place in a cluster queue.
localrules:
    metrics_all,


rule all:
    default_target: True
    input:
        all_outputs(),
        report_pages(),
