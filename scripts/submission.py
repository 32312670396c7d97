"""Rule submission: the competition's test digits predicted by the best variant."""

from noisy_mnist.jobs import run_job
from noisy_mnist.steps import make_submission


def main(smk, logger):
    make_submission(
        metrics_paths=list(smk.input.metrics),
        model_paths=list(smk.input.models),
        test_path=smk.input.test,
        out_csv=smk.output.csv,
        info_out=smk.output.info,
        logger=logger,
    )


run_job(snakemake, main)  # noqa: F821 (injected by Snakemake)
