checkpoint download_tiles:
    output:
        manifest="results/tiles/{region}.csv",
        tiles=directory("resources/tiles/{region}"),
    log:
        "results/logs/download_tiles/{region}.log",
    benchmark:
        "results/benchmarks/download_tiles/{region}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 2  # cloud detection and tile writing run threaded
    params:
        region=region_config,
        clouds=detector_config,
    script:
        "../scripts/download_tiles.py"
