# Noisy-MNIST: does Gaussian noise on the training digits change what a one-hidden-layer
# network learns? Gets the digits, splits them, makes one noisy training set per noise
# level, trains every (hidden size, noise level, seed) model, evaluates each on the
# clean eval split and writes results/report.md.
#
#   snakemake --cores 4                  # everything, as configured in config.yaml
#   snakemake --cores 4 --config noise='{levels: [0, 0.5]}'


import os
import sys

from snakemake.utils import min_version

min_version("8.0")


configfile: "config.yaml"


# the pipeline's own package, for the settings check here and for the rule scripts
sys.path.insert(0, os.path.join(workflow.basedir, "src"))

from noisy_mnist.settings import check_config

check_config(
    config,
    os.path.join(workflow.basedir, "schemas/config.schema.yaml"),
    overrides=dict(workflow.config_settings.config),
)


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/models.smk"
include: "rules/report.smk"


# Rules that take a second run on the submitting host, not as cluster jobs;
# get_data also keeps Kaggle credentials and network access on that host.
localrules:
    all,
    get_data,
    report,
    preview_noise,


rule all:
    default_target: True
    input:
        final_targets(),
