rule metrics:
    input:
        unpack(get_metrics_inputs),
    output:
        table="results/metrics/{region}.csv",
        pooled="results/metrics/{region}_pooled.csv",
        summary=report(
            "results/metrics/{region}_summary.csv",
            caption="../report/metrics.rst",
            category="Metrics",
            labels={"region": "{region}", "table": "summary"},
        ),
        plot=report(
            "results/metrics/{region}_mae.png",
            caption="../report/metrics_plot.rst",
            category="Metrics",
            labels={"region": "{region}", "figure": "MAE by method"},
        ),
        difficulty=report(
            "results/metrics/{region}_difficulty.png",
            caption="../report/metrics_difficulty.rst",
            category="Metrics",
            labels={"region": "{region}", "figure": "error vs cloud cover and gap"},
        ),
        examples=report(
            "results/metrics/{region}_examples.png",
            caption="../report/metrics_examples.rst",
            category="Metrics",
            labels={"region": "{region}", "figure": "example reconstructions"},
        ),
    log:
        "results/logs/metrics/{region}.log",
    benchmark:
        "results/benchmarks/metrics/{region}.tsv"
    conda:
        "../../envs/geo.yaml"
    params:
        metrics=config_provider("metrics"),
        holdout=config_provider("evaluation", "holdout_period"),
        experiment=get_region_experiment,
    script:
        "../scripts/metrics.py"


rule metrics_all:
    input:
        summaries=expand("results/metrics/{region}_summary.csv", region=REGIONS),
    output:
        table=report(
            "results/metrics/all_regions.csv",
            caption="../report/metrics_all.rst",
            category="Metrics",
            labels={"region": "all", "table": "all regions"},
        ),
    log:
        "results/logs/metrics_all.log",
    benchmark:
        "results/benchmarks/metrics_all.tsv"
    conda:
        "../../envs/geo.yaml"
    script:
        "../scripts/metrics_all.py"
