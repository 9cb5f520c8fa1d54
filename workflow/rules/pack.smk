rule pack_hdf5:
    input:
        manifest=get_manifest,
        # The per-date cloud classes, once rule cloud_stats declares them (else none).
        dates=branch(
            "dates" in rules.cloud_stats.output.keys(),
            then="results/cloudstats/{region}_dates.csv",
            otherwise=[],
        ),
    output:
        h5="results/hdf5/{region}.h5",
    log:
        "results/logs/pack_hdf5/{region}.log",
    benchmark:
        "results/benchmarks/pack_hdf5/{region}.tsv"
    conda:
        "../envs/geo.yaml"
    params:
        pack=config_provider("pack"),
        evaluation=packing_evaluation,
        # a new file format repacks existing files on the next run
        format_version=PACK_FORMAT_VERSION,
    script:
        "../scripts/pack_hdf5.py"
