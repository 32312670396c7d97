"""Rule split: stratified train/eval split of the labelled digits, stored as uint8."""

from noisy_mnist.jobs import run_job
from noisy_mnist.steps import split_data


def main(smk, logger):
    split_data(
        csv_path=smk.input.csv,
        train_out=smk.output.train,
        eval_out=smk.output.eval,
        eval_fraction=smk.params.eval_fraction,
        seed=smk.params.seed,
        logger=logger,
    )


run_job(snakemake, main)  # noqa: F821 (injected by Snakemake)
