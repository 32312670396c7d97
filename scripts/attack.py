"""Rule attack: accuracy of one model under FGSM and PGD at each epsilon."""

from noisy_mnist.jobs import run_job
from noisy_mnist.steps import attack_model


def main(smk, logger):
    attack_model(
        model_path=smk.input.model,
        eval_path=smk.input.eval,
        out_json=smk.output.scores,
        epsilons=smk.params.epsilons,
        pgd_steps=smk.params.pgd_steps,
        logger=logger,
    )


run_job(snakemake, main)  # noqa: F821 (injected by Snakemake)
