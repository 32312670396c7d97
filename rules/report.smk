rule report:
    input:
        metrics=all_models(f"results/metrics/{MODEL_NAME}.json"),
        histories=all_models(f"results/models/{MODEL_NAME}.history.csv"),
        train_benchmarks=all_models(f"results/benchmarks/train/{MODEL_NAME}.tsv"),
        other_benchmarks=[
            "results/benchmarks/get_data.tsv",
            "results/benchmarks/split.tsv",
            *expand("results/benchmarks/noisy_set/noise{noise}.tsv", noise=NOISE_LEVELS),
            *all_models(f"results/benchmarks/evaluate/{MODEL_NAME}.tsv"),
        ],
        provenance="data/raw/provenance.json",
        previews=expand("results/previews/noise_{noise}.png", noise=NOISE_LEVELS),
    output:
        report="results/report.md",
        accuracy=report(
            "results/accuracy.csv",
            caption="../report/accuracy.rst",
            category="Tables",
        ),
        timing=report(
            "results/timing.csv",
            caption="../report/timing.rst",
            category="Tables",
        ),
        plot=report(
            "results/accuracy_vs_noise.png",
            caption="../report/accuracy_plot.rst",
            category="Accuracy",
        ),
    params:
        settings=config,
    log:
        "logs/report.log",
    conda:
        "../envs/pipeline.yaml"
    script:
        "../scripts/report.py"
