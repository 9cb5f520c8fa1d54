# Checkpoints go to results/models/{experiment}/checkpoints/ and TensorBoard files to
# results/models/{experiment}/tensorboard/: not outputs, so a failed job's rerun resumes.
# More than one GPU (resource `gpu`, e.g. from the Slurm profile): one torchrun process each.
rule train:
    input:
        h5=get_experiment_h5,
    output:
        model="results/models/{experiment}/model.pt",
        history="results/models/{experiment}/history.csv",
        curve=report(
            "results/models/{experiment}/history.png",
            caption="../report/training.rst",
            category="Training",
            labels={"experiment": "{experiment}", "figure": "training curve"},
        ),
    log:
        "results/logs/train/{experiment}.log",
    benchmark:
        "results/benchmarks/train/{experiment}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    params:
        train=run_train_config,
        regions=get_experiment_regions,
    script:
        "../scripts/train.py"
