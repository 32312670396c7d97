"""Shared by the MLP and worker-process tests: one small, fast training run."""

import numpy as np

from noisy_mnist.mlp import MLP


def fit_small(workers: int, epochs: int = 2, **fit_kwargs):
    """Train a 10-7-3 MLP on 60 random images in batches of 16 (the last batch has
    12 rows); returns the model and its history."""
    rng = np.random.default_rng(12)
    images = rng.uniform(0, 1, size=(60, 10)).astype(np.float32)
    labels = rng.integers(0, 3, size=60)
    model = MLP(n_hidden=7, n_inputs=10, n_classes=3, seed=3)
    history = model.fit(
        images,
        labels,
        epochs=epochs,
        batch_size=16,
        learning_rate=0.01,
        rng=np.random.default_rng(4),
        workers=workers,
        **fit_kwargs,
    )
    return model, history
