"""Rule report: results/report.md with every table and figure of the run."""

from pathlib import Path

from noisy_mnist.jobs import run_job
from noisy_mnist.report import write_report


def main(smk, logger):
    submission = smk.input.submission
    write_report(
        metrics_paths=list(smk.input.metrics),
        attack_paths=list(smk.input.attacks),
        history_paths=list(smk.input.histories),
        train_benchmarks=list(smk.input.train_benchmarks),
        all_benchmarks=[*smk.input.train_benchmarks, *smk.input.other_benchmarks],
        provenance_path=smk.input.provenance,
        eval_set_path=smk.input.eval_set,
        settings=dict(smk.params.settings),
        preview_paths=list(smk.input.previews),
        out_md=smk.output.report,
        out_dir=Path(smk.output.report).parent,
        submission_info_path=submission[0] if submission else None,
    )
    logger.info("report written to %s", smk.output.report)


run_job(snakemake, main)  # noqa: F821 (injected by Snakemake)
