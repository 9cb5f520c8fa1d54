# Scores per run and for the baselines, then per region the tables, the comparison of the
# experiments and the figures: changing one experiment rescores that experiment only.


rule score_model:
    input:
        unpack(model_score_inputs),
    output:
        dates="results/metrics/{region}/models/{experiment}/dates.csv",
        pooled="results/metrics/{region}/models/{experiment}/pooled.csv",
    log:
        "results/logs/score_model/{experiment}/{region}.log",
    benchmark:
        "results/benchmarks/score_model/{experiment}/{region}.tsv"
    conda:
        "../envs/torch.yaml"
    params:
        holdout=config_provider("evaluation", "holdout_period"),
        experiment=get_run_experiment,
    script:
        "../scripts/score_model.py"


rule score_baselines:
    input:
        unpack(baseline_score_inputs),
    output:
        dates="results/metrics/{region}/baselines/dates.csv",
        pooled="results/metrics/{region}/baselines/pooled.csv",
    log:
        "results/logs/score_baselines/{region}.log",
    benchmark:
        "results/benchmarks/score_baselines/{region}.tsv"
    conda:
        "../envs/torch.yaml"
    params:
        baselines=config_provider("metrics", "baselines"),
        holdout=config_provider("evaluation", "holdout_period"),
    script:
        "../scripts/score_baselines.py"


rule metrics:
    input:
        unpack(get_metrics_inputs),
    output:
        table="results/metrics/{region}.csv",
        pooled="results/metrics/{region}_pooled.csv",
        # the summary and the experiments' table: in the report as HTML tables (rule
        # report_metrics_tables)
        summary="results/metrics/{region}_summary.csv",
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
        experiments="results/metrics/{region}_experiments.csv",
        experiments_plot=report(
            "results/metrics/{region}_experiments.png",
            caption="../report/metrics_experiments_plot.rst",
            category="Metrics",
            labels={"region": "{region}", "figure": "experiments"},
        ),
    log:
        "results/logs/metrics/{region}.log",
    benchmark:
        "results/benchmarks/metrics/{region}.tsv"
    conda:
        "../envs/torch.yaml"
    params:
        baselines=config_provider("metrics", "baselines"),
        runs=metrics_runs,
    script:
        "../scripts/metrics.py"


rule metrics_all:
    input:
        summaries=expand("results/metrics/{region}_summary.csv", region=REGIONS),
        experiments=expand("results/metrics/{region}_experiments.csv", region=REGIONS),
    output:
        # in the report as HTML tables (rule report_metrics_all_tables)
        table="results/metrics/all_regions.csv",
        experiments="results/metrics/all_experiments.csv",
    log:
        "results/logs/metrics_all.log",
    benchmark:
        "results/benchmarks/metrics_all.tsv"
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/metrics_all.py"
