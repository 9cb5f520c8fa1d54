# The pages of the report (rules in report.smk) the default target asks for.

from cloudfree.experiments import experiment_names


def report_pages():
    """Every page of the report made from the default target's results."""
    pages = ["results/report/settings/workflow.html"]
    pages += [
        f"results/report/settings/experiment_{e}.html" for e in experiment_names(config)
    ]
    for region in REGIONS:
        pages += [
            f"results/report/settings/region_{region}.html",
            f"results/report/cloudstats/{region}_summary.html",
            f"results/report/cloudstats/{region}_dates.html",
            f"results/report/metrics/{region}_summary.html",
            f"results/report/metrics/{region}_experiments.html",
        ]
    for scene in sorted(INDUCTIVE):  # the evaluation scenes: their cloud statistics
        pages += [
            f"results/report/cloudstats/{scene}_summary.html",
            f"results/report/cloudstats/{scene}_dates.html",
        ]
    if len(REGIONS) > 1:
        pages += [
            "results/report/metrics/all_regions.html",
            "results/report/metrics/all_experiments.html",
        ]
    return pages
