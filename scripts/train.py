"""Rule train: one MLP for one (hidden size, noise level, seed)."""

from noisy_mnist.jobs import run_job
from noisy_mnist.steps import train_model


def main(smk, logger):
    wc = smk.wildcards
    train_model(
        train_path=smk.input.train,
        model_out=smk.output.model,
        history_out=smk.output.history,
        hidden=int(wc.hidden),
        noise=float(wc.noise),
        seed=int(wc.seed),
        epochs=smk.params.epochs,
        batch_size=smk.params.batch_size,
        learning_rate=smk.params.learning_rate,
        optimizer=smk.params.optimizer,
        name=f"h{wc.hidden}_n{wc.noise}_s{wc.seed}",
        workers=smk.params.workers,
        job_threads=smk.threads,
        logger=logger,
    )


run_job(snakemake, main)  # noqa: F821 (injected by Snakemake)
