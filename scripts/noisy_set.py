"""Rule noisy_set: the training set for one noise level, float32 in [0, 1]."""

from noisy_mnist.jobs import run_job
from noisy_mnist.steps import make_noisy_set


def main(smk, logger):
    make_noisy_set(
        train_path=smk.input.train,
        out_path=smk.output.train,
        level=smk.params.level,
        base_std=smk.params.base_std,
        mode=smk.params.mode,
        seed=smk.params.seed,
        logger=logger,
    )


run_job(snakemake, main)  # noqa: F821 (injected by Snakemake)
