rule infer:
    input:
        model="results/models/{experiment}/model.pt",
        h5="results/hdf5/{region}.h5",
    output:
        tiles=directory("results/predictions/{experiment}/{region}/tiles"),
        evaluation="results/predictions/{experiment}/{region}/eval.h5",
    log:
        "results/logs/infer/{experiment}/{region}.log",
    benchmark:
        "results/benchmarks/infer/{experiment}/{region}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    params:
        infer=result_config("infer"),
    script:
        "../scripts/infer.py"
