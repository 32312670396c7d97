rule train:
    input:
        train="data/noisy/train_noise{noise}.npz",
    output:
        model=f"results/models/{MODEL_NAME}.npz",
        history=f"results/models/{MODEL_NAME}.history.csv",
    params:
        epochs=config["train"]["epochs"],
        batch_size=config["train"]["batch_size"],
        learning_rate=config["train"]["learning_rate"],
        optimizer=config["train"].get("optimizer", "adam"),
    threads: config["train"].get("threads", 1)
    log:
        f"logs/train/{MODEL_NAME}.log",
    benchmark:
        f"results/benchmarks/train/{MODEL_NAME}.tsv"
    resources:
        # the float32 training set, one gathered batch and the BLAS buffers
        mem_mb=lambda wc, input: max(500, 1.5 * input.size_mb + 300),
        runtime=lambda wc, input: max(10, int(input.size_mb / 10)),
    conda:
        "../envs/pipeline.yaml"
    script:
        "../scripts/train.py"


rule evaluate:
    input:
        model=f"results/models/{MODEL_NAME}.npz",
        eval="data/processed/eval.npz",
    output:
        metrics=f"results/metrics/{MODEL_NAME}.json",
    log:
        f"logs/evaluate/{MODEL_NAME}.log",
    benchmark:
        f"results/benchmarks/evaluate/{MODEL_NAME}.tsv"
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/pipeline.yaml"
    script:
        "../scripts/evaluate.py"
