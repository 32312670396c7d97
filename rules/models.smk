rule train:
    input:
        train="data/noisy/train_noise{noise}.npz",
    output:
        model=f"results/models/{MODEL_NAME}.npz",
        history=f"results/models/{MODEL_NAME}.history.csv",
    log:
        f"logs/train/{MODEL_NAME}.log",
    benchmark:
        f"results/benchmarks/train/{MODEL_NAME}.tsv"
    conda:
        "../envs/pipeline.yaml"
    threads: config["train"].get("threads", 1)
    resources:
        # the float32 training set, one gathered batch and the BLAS buffers
        mem_mb=lambda wc, input: max(500, 1.5 * input.size_mb + 300),
        runtime=lambda wc, input: max(10, int(input.size_mb / 10)),
    params:
        epochs=config["train"]["epochs"],
        batch_size=config["train"]["batch_size"],
        learning_rate=config["train"]["learning_rate"],
        optimizer=config["train"].get("optimizer", "adam"),
        # more workers sum the gradients in a different order, which changes
        # the weights, so a new thread count retrains
        workers=config["train"].get("threads", 1),
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
    conda:
        "../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        noise_levels=config["evaluation"]["noise_levels"],
        base_std=config["noise"]["base_std"],
        noise_seed=config["evaluation"].get("noise_seed", 11),
    script:
        "../scripts/evaluate.py"


rule attack:
    input:
        model=f"results/models/{MODEL_NAME}.npz",
        eval="data/processed/eval.npz",
    output:
        scores=f"results/attacks/{MODEL_NAME}.json",
    log:
        f"logs/attack/{MODEL_NAME}.log",
    benchmark:
        f"results/benchmarks/attack/{MODEL_NAME}.tsv"
    conda:
        "../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=20,
    params:
        epsilons=config["evaluation"]["epsilons"],
        pgd_steps=config["evaluation"].get("pgd_steps", 10),
    script:
        "../scripts/attack.py"
