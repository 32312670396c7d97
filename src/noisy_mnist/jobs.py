"""Glue between a Snakemake rule's ``script:`` and the package's plain functions.

Every rule script ends with ``run_job(snakemake, main)``: the job's log goes to the
rule's ``log:`` file, BLAS uses exactly the job's ``threads``, and a problem with
the user's input or settings ends the job with one clear line instead of a traceback.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

from threadpoolctl import threadpool_limits


def user_errors() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(our own error types, all error types that mean "fix your input").

    Imported only when a job fails, so that a training job does not pay for
    importing the CSV reader (and pandas) on every start.
    """
    from noisy_mnist.data import DataFormatError, KaggleDownloadError
    from noisy_mnist.datasets import DatasetFileError
    from noisy_mnist.mlp import ModelFileError, TrainingDivergedError
    from noisy_mnist.parallel import WorkerError

    own = (
        DataFormatError,
        KaggleDownloadError,
        DatasetFileError,
        ModelFileError,
        TrainingDivergedError,
        WorkerError,
    )
    return own, (*own, FileNotFoundError, ValueError)


def job_logger(log_path: str, name: str) -> logging.Logger:
    """A logger that writes timestamped lines to the rule's log file."""
    logger = logging.getLogger(f"noisy_mnist.{name}")
    logger.setLevel(logging.INFO)
    logger.handlers.clear()
    handler = logging.FileHandler(log_path, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    return logger


def run_job(snakemake, main: Callable[[object, logging.Logger], None]) -> None:
    """Run ``main(snakemake, logger)`` as one Snakemake job.

    Exits with status 1 after printing a one-line reason for errors from
    :func:`user_errors`; anything else is a bug whose traceback goes to the log.
    """
    log_path = snakemake.log[0]
    logger = job_logger(log_path, snakemake.rule)
    console = sys.stderr
    start = time.perf_counter()
    logger.info(
        "rule %s, %d thread(s), wildcards %s",
        snakemake.rule,
        snakemake.threads,
        dict(snakemake.wildcards.items()),
    )
    try:
        with (
            threadpool_limits(limits=snakemake.threads),
            open(log_path, "a", encoding="utf-8") as log_stream,
        ):
            # stray prints and warnings from libraries land in the log as well
            sys.stderr = log_stream
            try:
                main(snakemake, logger)
            finally:
                sys.stderr = console
    except KeyboardInterrupt:
        # Ctrl-C reaches every job; Snakemake already says it is stopping
        logger.warning("interrupted")
        sys.exit(130)
    except Exception as exc:
        own, user = user_errors()
        if isinstance(exc, user):
            # our own errors say all there is; a generic one keeps its traceback
            logger.error("%s", exc, exc_info=not isinstance(exc, own))
            print(f"error in rule {snakemake.rule}: {exc}", file=console)
        else:
            logger.exception("unexpected failure")
            print(
                f"unexpected failure in rule {snakemake.rule}; the traceback is in "
                f"{log_path}",
                file=console,
            )
        sys.exit(1)
    logger.info("done in %.2f s", time.perf_counter() - start)
