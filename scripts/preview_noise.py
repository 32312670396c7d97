"""Rule preview_noise: a picture of the same digits clean and noisy."""

from noisy_mnist.jobs import run_job
from noisy_mnist.steps import preview_noise


def main(smk, logger):
    preview_noise(
        train_path=smk.input.clean,
        noisy_path=smk.input.noisy,
        out_png=smk.output.png,
        count=smk.params.n_digits,
        logger=logger,
    )


run_job(snakemake, main)  # noqa: F821 (injected by Snakemake)
