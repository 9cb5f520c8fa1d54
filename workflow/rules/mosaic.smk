rule mosaic:
    input:
        tiles="results/predictions/{experiment}/{region}/tiles",
        manifest=get_manifest,
    output:
        mosaics=directory("results/mosaics/{experiment}/{region}"),
        quicklook=report(
            "results/mosaics/{experiment}/{region}_quicklook.png",
            caption="../report/mosaic.rst",
            category="Mosaics",
            # one label: the report makes a second one with two values (half the entries
            # each) a toggle, which fails where a region lacks one of the two models
            labels={"quicklook": "{region}, model {experiment}"},
        ),
    log:
        "results/logs/mosaic/{experiment}/{region}.log",
    benchmark:
        "results/benchmarks/mosaic/{experiment}/{region}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 2
    params:
        # which experiments get mosaics decides which jobs run, not what one writes
        mosaic=result_config("mosaic", drop=("experiments",)),
    script:
        "../scripts/mosaic.py"
