rule submission:
    input:
        metrics=all_models(f"results/metrics/{MODEL_NAME}.json"),
        models=all_models(f"results/models/{MODEL_NAME}.npz"),
        test="data/processed/test.npz",
    output:
        csv=report(
            "results/submission.csv",
            caption="../report/submission.rst",
            category="Kaggle submission",
        ),
        info="results/submission.json",
    log:
        "logs/submission.log",
    benchmark:
        "results/benchmarks/submission.tsv"
    conda:
        "../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/submission.py"


rule report:
    input:
        metrics=all_models(f"results/metrics/{MODEL_NAME}.json"),
        attacks=all_models(f"results/attacks/{MODEL_NAME}.json"),
        histories=all_models(f"results/models/{MODEL_NAME}.history.csv"),
        train_benchmarks=all_models(f"results/benchmarks/train/{MODEL_NAME}.tsv"),
        other_benchmarks=[
            "results/benchmarks/get_data.tsv",
            "results/benchmarks/split.tsv",
            *expand(
                "results/benchmarks/noisy_set/noise{noise}.tsv", noise=NOISE_LEVELS
            ),
            *all_models(f"results/benchmarks/evaluate/{MODEL_NAME}.tsv"),
            *all_models(f"results/benchmarks/attack/{MODEL_NAME}.tsv"),
        ],
        provenance="data/raw/provenance.json",
        eval_set="data/processed/eval.npz",
        previews=expand("results/previews/noise_{noise}.png", noise=NOISE_LEVELS),
        submission=["results/submission.json"] if has_test_data() else [],
    output:
        report=report(
            "results/report.md",
            caption="../report/report_md.rst",
            category="Tables",
        ),
        accuracy=report_table("accuracy.csv", "Clean eval accuracy of every model."),
        timing=report_table("timing.csv", "Training time and memory of every model."),
        robustness=report_table(
            "robustness.csv", "Accuracy of every model under test-time noise."
        ),
        adversarial=report_table(
            "adversarial.csv", "Accuracy of every model under FGSM and PGD."
        ),
        significance=report_table(
            "significance.csv", "Paired McNemar tests of each noise level against 0."
        ),
        accuracy_plot=report_figure(
            "accuracy_vs_noise.png", "accuracy_plot.rst", "Accuracy"
        ),
        heatmap=report_figure("robustness_heatmap.png", "heatmap.rst", "Robustness"),
        adversarial_plot=report_figure(
            "adversarial.png", "adversarial.rst", "Robustness"
        ),
        learning=report_figure("learning_curves.png", "learning.rst", "Training"),
        confusion=report_figure("confusion_best.png", "confusion.rst", "Accuracy"),
    log:
        "logs/report.log",
    benchmark:
        "results/benchmarks/report.tsv"
    conda:
        "../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        settings=config,
    script:
        "../scripts/report.py"
