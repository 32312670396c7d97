"""Accuracy, per-class accuracy and the confusion matrix of a model's predictions."""

from __future__ import annotations

import numpy as np

from noisy_mnist import N_CLASSES


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Counts (n_classes, n_classes): row = true digit, column = predicted digit."""
    flat = labels.astype(np.intp) * N_CLASSES + predicted.astype(np.intp)
    return np.bincount(flat, minlength=N_CLASSES**2).reshape(N_CLASSES, N_CLASSES)


def classification_metrics(labels: np.ndarray, predicted: np.ndarray) -> dict:
    """Accuracy (a fraction), per-class accuracy and the confusion matrix, as JSON-able
    Python values. A digit absent from ``labels`` gets ``None`` as its accuracy."""
    matrix = confusion_matrix(labels, predicted)
    per_class_total = matrix.sum(axis=1)
    per_class = [
        float(matrix[d, d] / per_class_total[d]) if per_class_total[d] else None
        for d in range(N_CLASSES)
    ]
    return {
        "n_samples": int(len(labels)),
        "n_correct": int(np.trace(matrix)),
        "accuracy": float(np.trace(matrix) / len(labels)),
        "per_class_accuracy": per_class,
        "confusion_matrix": matrix.tolist(),
    }
