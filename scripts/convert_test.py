"""Rule convert_test: the unlabelled competition digits, stored as uint8."""

from noisy_mnist.jobs import run_job
from noisy_mnist.steps import convert_test


def main(smk, logger):
    convert_test(csv_path=smk.input.csv, test_out=smk.output.test, logger=logger)


run_job(snakemake, main)  # noqa: F821 (injected by Snakemake)
