# The report's own pages, each a small HTML file the report shows in place (a CSV would only
# be a download): the result tables, and the settings of every region and experiment and of
# the rest of the workflow as it resolved them (every default filled in).

from cloudfree.report_pages import (
    experiment_settings,
    region_settings,
    workflow_settings,
)


localrules:
    report_cloud_tables,
    report_metrics_tables,
    report_metrics_all_tables,
    settings_region,
    settings_experiment,
    settings_workflow,


rule report_cloud_tables:
    input:
        summary="results/cloudstats/{region}_summary.csv",
        dates="results/cloudstats/{region}_dates.csv",
    output:
        summary=report(
            "results/report/cloudstats/{region}_summary.html",
            caption="../report/cloud_summary.rst",
            category="Cloud statistics",
            labels={"region": "{region}", "table": "summary"},
        ),
        dates=report(
            "results/report/cloudstats/{region}_dates.html",
            caption="../report/cloud_dates.rst",
            category="Cloud statistics",
            labels={"region": "{region}", "table": "date selection"},
        ),
    log:
        "results/logs/report_cloud_tables/{region}.log",
    conda:
        "../envs/geo.yaml"
    params:
        titles=lambda wildcards: {
            "summary": f"Cloud statistics of region {wildcards.region}",
            "dates": f"Date selection of region {wildcards.region}",
        },
    script:
        "../scripts/report_tables.py"


rule report_metrics_tables:
    input:
        summary="results/metrics/{region}_summary.csv",
        experiments="results/metrics/{region}_experiments.csv",
    output:
        summary=report(
            "results/report/metrics/{region}_summary.html",
            caption="../report/metrics.rst",
            category="Metrics",
            labels={"region": "{region}", "table": "summary"},
        ),
        experiments=report(
            "results/report/metrics/{region}_experiments.html",
            caption="../report/metrics_experiments.rst",
            category="Metrics",
            labels={"region": "{region}", "table": "experiments"},
        ),
    log:
        "results/logs/report_metrics_tables/{region}.log",
    conda:
        "../envs/geo.yaml"
    params:
        titles=lambda wildcards: {
            "summary": f"Metrics of region {wildcards.region}, per evaluation set and method",
            "experiments": f"Experiments of region {wildcards.region} compared",
        },
    script:
        "../scripts/report_tables.py"


rule report_metrics_all_tables:
    input:
        table="results/metrics/all_regions.csv",
        experiments="results/metrics/all_experiments.csv",
    output:
        table=report(
            "results/report/metrics/all_regions.html",
            caption="../report/metrics_all.rst",
            category="Metrics",
            labels={"region": "all", "table": "all regions"},
        ),
        experiments=report(
            "results/report/metrics/all_experiments.html",
            caption="../report/metrics_all_experiments.rst",
            category="Metrics",
            labels={"region": "all", "table": "all experiments"},
        ),
    log:
        "results/logs/report_metrics_all_tables.log",
    conda:
        "../envs/geo.yaml"
    params:
        titles={
            "table": "Metrics of every region",
            "experiments": "Experiments of every region",
        },
    script:
        "../scripts/report_tables.py"


# One label each: the report's toggles (a second label with two values, half the entries
# each) never apply to these pages.
rule settings_region:
    output:
        report(
            "results/report/settings/region_{region}.html",
            caption="../report/settings_region.rst",
            category="Settings",
            labels={"settings": "region {region}"},
        ),
    log:
        "results/logs/settings/region_{region}.log",
    conda:
        "../envs/geo.yaml"
    params:
        title="Settings of region {region}",
        sections=lambda wildcards: canonical(
            region_settings(config, wildcards.region, detector_config(wildcards))
        ),
    script:
        "../scripts/settings.py"


rule settings_experiment:
    output:
        report(
            "results/report/settings/experiment_{experiment}.html",
            caption="../report/settings_experiment.rst",
            category="Settings",
            labels={"settings": "experiment {experiment}"},
        ),
    log:
        "results/logs/settings/experiment_{experiment}.log",
    conda:
        "../envs/geo.yaml"
    params:
        title="Settings of experiment {experiment}",
        sections=lambda wildcards: canonical(
            experiment_settings(config, wildcards.experiment)
        ),
    script:
        "../scripts/settings.py"


rule settings_workflow:
    output:
        report(
            "results/report/settings/workflow.html",
            caption="../report/settings_workflow.rst",
            category="Settings",
            labels={"settings": "workflow"},
        ),
    log:
        "results/logs/settings/workflow.log",
    conda:
        "../envs/geo.yaml"
    params:
        title="Settings of the workflow",
        sections=lambda wildcards: canonical(workflow_settings(config)),
    script:
        "../scripts/settings.py"
