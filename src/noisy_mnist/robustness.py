"""Accuracy under test-time noise and under gradient-sign attacks.

Both attacks perturb each eval image within an L-infinity ball of radius ``epsilon``
(pixels in [0, 1]) in the direction that increases the model's loss on the true
label; the input gradient comes from :meth:`noisy_mnist.mlp.MLP.input_gradient`.
"""

from __future__ import annotations

import numpy as np

from noisy_mnist.datasets import add_noise, noise_generator
from noisy_mnist.mlp import DTYPE, MLP


def noisy_eval_accuracy(
    model: MLP,
    images: np.ndarray,
    labels: np.ndarray,
    levels,
    base_std: float,
    seed: int,
) -> dict[float, float]:
    """Accuracy on noisy copies of the eval set, one per level.

    ``images`` are uint8 (n, 784). The copies depend only on ``seed`` and the level,
    so every model is scored on exactly the same noisy images.
    """
    scores = {}
    for level in levels:
        noisy = add_noise(images, level, base_std, noise_generator(seed, level, "eval"))
        scores[float(level)] = float((model.predict(noisy) == labels).mean())
    return scores


def fgsm(
    model: MLP,
    images: np.ndarray,
    labels: np.ndarray,
    epsilon: float,
    batch_size: int = 2048,
) -> np.ndarray:
    """Fast gradient sign method: ``clip(x + epsilon * sign(grad_x loss), 0, 1)``.

    ``images`` are float32 in [0, 1], shape (n, 784); returns the same shape.
    """
    out = np.empty_like(images, dtype=DTYPE)
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size]
        grad = model.input_gradient(x, labels[start : start + batch_size])
        out[start : start + batch_size] = np.clip(x + epsilon * np.sign(grad), 0, 1)
    return out


def pgd(
    model: MLP,
    images: np.ndarray,
    labels: np.ndarray,
    epsilon: float,
    steps: int,
    batch_size: int = 2048,
) -> np.ndarray:
    """Projected gradient descent on the loss: ``steps`` sign steps of size
    ``2.5 * epsilon / steps`` from the clean image (no random start, so it is
    deterministic), each projected onto the epsilon-ball and [0, 1].

    For each image the first iterate that the model gets wrong is kept (else the
    last), so a later step that happens to undo a success does not count.
    """
    step_size = 2.5 * epsilon / steps
    out = np.empty_like(images, dtype=DTYPE)
    for start in range(0, len(images), batch_size):
        clean = images[start : start + batch_size]
        y = labels[start : start + batch_size]
        low, high = np.maximum(clean - epsilon, 0), np.minimum(clean + epsilon, 1)
        x = clean.copy()
        best = x.copy()
        fooled = np.zeros(len(y), dtype=bool)
        for _ in range(steps):
            x += step_size * np.sign(model.input_gradient(x, y))
            np.clip(x, low, high, out=x)
            wrong = ~fooled & (model.predict(x) != y)
            best[wrong] = x[wrong]
            fooled |= wrong
        best[~fooled] = x[~fooled]
        out[start : start + batch_size] = best
    return out


def adversarial_accuracy(
    model: MLP, images: np.ndarray, labels: np.ndarray, epsilons, pgd_steps: int
) -> dict[str, dict[float, float]]:
    """Accuracy under FGSM and PGD at each epsilon; ``images`` uint8 (n, 784)."""
    clean = images.astype(DTYPE) / DTYPE(255)
    scores: dict[str, dict[float, float]] = {"fgsm": {}, "pgd": {}}
    for epsilon in epsilons:
        epsilon = float(epsilon)
        if epsilon == 0:
            accuracy = float((model.predict(clean) == labels).mean())
            scores["fgsm"][epsilon] = scores["pgd"][epsilon] = accuracy
            continue
        attacked = fgsm(model, clean, labels, epsilon)
        scores["fgsm"][epsilon] = float((model.predict(attacked) == labels).mean())
        attacked = pgd(model, clean, labels, epsilon, pgd_steps)
        scores["pgd"][epsilon] = float((model.predict(attacked) == labels).mean())
    return scores
