"""Rule report: results/report.md with the accuracy and timing tables."""

from noisy_mnist.jobs import run_job
from noisy_mnist.report import write_report


def main(smk, logger):
    write_report(
        metrics_paths=list(smk.input.metrics),
        history_paths=list(smk.input.histories),
        train_benchmarks=list(smk.input.train_benchmarks),
        all_benchmarks=[*smk.input.train_benchmarks, *smk.input.other_benchmarks],
        provenance_path=smk.input.provenance,
        settings=dict(smk.params.settings),
        preview_paths=list(smk.input.previews),
        out_md=smk.output.report,
        out_accuracy=smk.output.accuracy,
        out_timing=smk.output.timing,
        out_plot=smk.output.plot,
    )
    logger.info("report written to %s", smk.output.report)


run_job(snakemake, main)  # noqa: F821 (injected by Snakemake)
