"""Rule evaluate: accuracy, per-class accuracy and confusion matrix of one model."""

from noisy_mnist.jobs import run_job
from noisy_mnist.steps import evaluate_model


def main(smk, logger):
    evaluate_model(
        model_path=smk.input.model,
        eval_path=smk.input.eval,
        metrics_out=smk.output.metrics,
        noise_levels=smk.params.noise_levels,
        base_std=smk.params.base_std,
        noise_seed=smk.params.noise_seed,
        logger=logger,
    )


run_job(snakemake, main)  # noqa: F821 (injected by Snakemake)
