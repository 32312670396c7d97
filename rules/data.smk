rule get_data:
    input:
        # a user's CSV is an input, so replacing it reruns everything downstream
        user_files=lambda wc: (
            [config["data"]["path"]]
            + ([config["data"]["test_path"]] if config["data"].get("test_path") else [])
            if config["data"]["source"] == "csv"
            else []
        ),
    output:
        train="data/raw/train.csv",
        provenance="data/raw/provenance.json",
        **({"test": "data/raw/test.csv"} if has_test_data() else {}),
    params:
        source=config["data"]["source"],
        path=config["data"].get("path", ""),
        test_path=config["data"].get("test_path", ""),
        competition=config["data"].get("competition", "digit-recognizer"),
    log:
        "logs/get_data.log",
    benchmark:
        "results/benchmarks/get_data.tsv"
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/pipeline.yaml"
    script:
        "../scripts/get_data.py"


rule split:
    input:
        csv="data/raw/train.csv",
    output:
        train="data/processed/train.npz",
        eval="data/processed/eval.npz",
    params:
        eval_fraction=config["split"]["eval_fraction"],
        seed=config["split"]["seed"],
    log:
        "logs/split.log",
    benchmark:
        "results/benchmarks/split.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/pipeline.yaml"
    script:
        "../scripts/split.py"


rule convert_test:
    input:
        csv="data/raw/test.csv",
    output:
        test="data/processed/test.npz",
    log:
        "logs/convert_test.log",
    benchmark:
        "results/benchmarks/convert_test.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/pipeline.yaml"
    script:
        "../scripts/convert_test.py"


rule noisy_set:
    input:
        train="data/processed/train.npz",
    output:
        train="data/noisy/train_noise{noise}.npz",
    params:
        level=lambda wc: float(wc.noise),
        base_std=config["noise"]["base_std"],
        mode=config["noise"].get("mode", "replace"),
        seed=config["noise"].get("seed", 7),
    log:
        "logs/noisy_set/noise{noise}.log",
    benchmark:
        "results/benchmarks/noisy_set/noise{noise}.tsv"
    resources:
        mem_mb=lambda wc, input: max(500, 12 * input.size_mb + 200),
        runtime=10,
    conda:
        "../envs/pipeline.yaml"
    script:
        "../scripts/noisy_set.py"


rule preview_noise:
    input:
        clean="data/processed/train.npz",
        noisy="data/noisy/train_noise{noise}.npz",
    output:
        png=report(
            "results/previews/noise_{noise}.png",
            caption="../report/preview.rst",
            category="Noisy training digits",
        ),
    params:
        n_digits=config["noise"].get("preview_count", 10),
    log:
        "logs/preview_noise/noise{noise}.log",
    conda:
        "../envs/pipeline.yaml"
    script:
        "../scripts/preview_noise.py"
