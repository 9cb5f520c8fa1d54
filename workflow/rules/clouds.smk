rule cloud_stats:
    input:
        manifest=get_manifest,
    output:
        coverage="results/cloudstats/{region}.csv",
        runs="results/cloudstats/{region}_runs.csv",
        tiles="results/cloudstats/{region}_tiles.csv",
        # shown in the report as HTML tables (rule report_cloud_tables)
        summary="results/cloudstats/{region}_summary.csv",
        dates="results/cloudstats/{region}_dates.csv",
        heatmap=report(
            "results/cloudstats/{region}_coverage.png",
            caption="../report/cloud_coverage.rst",
            category="Cloud statistics",
            labels={"region": "{region}", "figure": "coverage"},
        ),
        runs_plot=report(
            "results/cloudstats/{region}_runs.png",
            caption="../report/cloud_runs.rst",
            category="Cloud statistics",
            labels={"region": "{region}", "figure": "run lengths"},
        ),
        clear_dates_plot=report(
            "results/cloudstats/{region}_clear_dates.png",
            caption="../report/cloud_clear_dates.rst",
            category="Cloud statistics",
            labels={"region": "{region}", "figure": "clear dates"},
        ),
    log:
        "results/logs/cloud_stats/{region}.log",
    benchmark:
        "results/benchmarks/cloud_stats/{region}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 2  # dask's threaded scheduler, one chunk per tile
    params:
        # the selection rules only: detector settings reach download_tiles, where they apply
        clouds=config_provider("clouds", "selection"),
    script:
        "../scripts/cloud_stats.py"
