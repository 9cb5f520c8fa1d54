rule metrics:
    input:
        h5="results/hdf5/{region}.h5",
        predictions=get_region_predictions,
    output:
        table="results/metrics/{region}.csv",
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
    log:
        "results/logs/metrics/{region}.log",
    benchmark:
        "results/benchmarks/metrics/{region}.tsv"
    conda:
        "../../envs/geo.yaml"
    params:
        metrics=config_provider("metrics"),
        experiment=get_region_experiment,
    script:
        "../scripts/metrics.py"
