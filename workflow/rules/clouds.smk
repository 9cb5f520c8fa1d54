rule cloud_stats:
    input:
        manifest=get_manifest,
    output:
        coverage="results/cloudstats/{region}.csv",
        runs="results/cloudstats/{region}_runs.csv",
        heatmap=report(
            "results/cloudstats/{region}_coverage.png",
            caption="../report/cloud_coverage.rst",
            category="Cloud statistics",
            labels={"region": "{region}", "figure": "coverage"},
        ),
    log:
        "results/logs/cloud_stats/{region}.log",
    benchmark:
        "results/benchmarks/cloud_stats/{region}.tsv"
    conda:
        "../../envs/geo.yaml"
    script:
        "../scripts/cloud_stats.py"
