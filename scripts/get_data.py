"""Rule get_data: the labelled digits as data/raw/train.csv, plus provenance."""

from noisy_mnist.jobs import run_job
from noisy_mnist.steps import get_data


def main(smk, logger):
    get_data(
        source=smk.params.source,
        train_out=smk.output.train,
        provenance_out=smk.output.provenance,
        test_out=smk.output.get("test"),
        path=smk.params.path,
        test_path=smk.params.test_path,
        competition=smk.params.competition,
        logger=logger,
    )


run_job(snakemake, main)  # noqa: F821 (injected by Snakemake)
