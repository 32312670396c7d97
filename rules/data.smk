rule get_data:
    input:
        # a user's CSV is an input, so replacing it reruns everything downstream
        user_files=user_data_files(),
    output:
        **({"test": "data/raw/test.csv"} if has_test_data() else {}),
        train="data/raw/train.csv",
        provenance="data/raw/provenance.json",
    log:
        "logs/get_data.log",
    benchmark:
        "results/benchmarks/get_data.tsv"
    conda:
        "../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        # only the settings of the chosen source, so that editing another
        # source's settings reruns nothing
        source=config["data"]["source"],
        path=data_setting("csv", "path"),
        test_path=data_setting("csv", "test_path"),
        competition=data_setting("kaggle", "competition"),
        input_sha256=user_data_fingerprint(),
    script:
        "../scripts/get_data.py"


rule split:
    input:
        csv="data/raw/train.csv",
    output:
        train="data/processed/train.npz",
        eval="data/processed/eval.npz",
    log:
        "logs/split.log",
    benchmark:
        "results/benchmarks/split.tsv"
    conda:
        "../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        eval_fraction=config["split"]["eval_fraction"],
        seed=config["split"]["seed"],
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
    conda:
        "../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/convert_test.py"


rule noisy_set:
    input:
        train="data/processed/train.npz",
    output:
        train="data/noisy/train_noise{noise}.npz",
    log:
        "logs/noisy_set/noise{noise}.log",
    benchmark:
        "results/benchmarks/noisy_set/noise{noise}.tsv"
    conda:
        "../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input: max(500, 12 * input.size_mb + 200),
        runtime=10,
    params:
        level=lambda wc: float(wc.noise),
        # level 0 draws no noise: its set must not depend on the noise settings
        base_std=noise_setting("base_std"),
        mode=config["noise"].get("mode", "replace"),
        seed=noise_setting("seed"),
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
    log:
        "logs/preview_noise/noise{noise}.log",
    benchmark:
        "results/benchmarks/preview_noise/noise{noise}.tsv"
    conda:
        "../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        n_digits=config["noise"].get("preview_count", 10),
    script:
        "../scripts/preview_noise.py"
