"""Noisy-MNIST: train one-hidden-layer MLPs on clean and noisy MNIST digits.

The package holds everything the Snakemake rules compute, as plain functions that
tests import without Snakemake: reading and checking Kaggle-format CSV files,
the stratified split, the noisy training sets, the NumPy MLP, evaluation and the
report.
"""

__version__ = "0.1.0"

N_PIXELS = 784
N_CLASSES = 10
IMAGE_SIDE = 28
