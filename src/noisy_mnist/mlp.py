"""A one-hidden-layer perceptron in NumPy: 784 -> hidden (ReLU) -> 10 (softmax).

Everything is float32 and batched so that the work lands in BLAS matrix products;
the Python loop runs once per mini-batch, never per sample. The gradients are checked
against finite differences in ``tests/test_mlp.py``.

Shapes used throughout: ``images`` (n_samples, n_inputs) float32 in [0, 1],
``labels`` (n_samples,) integers in [0, n_classes).
"""

from __future__ import annotations

import json
import math
import os
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from noisy_mnist.files import save_npz_atomic

DTYPE = np.float32
PARAM_NAMES = ("w1", "b1", "w2", "b2")
OPTIMIZERS = ("adam", "sgd")
MODEL_FORMAT = "noisy-mnist-mlp/1"


class ModelFileError(ValueError):
    """A model file that is missing, truncated, or not one of ours."""


class TrainingDivergedError(FloatingPointError):
    """The loss or a weight stopped being finite during training."""


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``logits`` (n_samples, n_classes), computed in place.

    The row maximum is subtracted first so that ``exp`` never overflows.
    """
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return logits


def cross_entropy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of ``labels`` under ``probs``.

    Probabilities are clipped at the dtype's smallest normal number, so a confident
    wrong answer costs a large but finite loss instead of ``inf``.
    """
    tiny = np.finfo(probs.dtype).tiny
    picked = probs[np.arange(len(labels)), labels]
    return float(-np.log(np.maximum(picked, tiny)).mean(dtype=np.float64))


@dataclass
class EpochRecord:
    """What one pass over the training set cost and achieved."""

    epoch: int
    loss: float
    train_accuracy: float
    seconds: float
    samples_per_second: float


@dataclass
class MLP:
    """One hidden ReLU layer and a softmax output, trained by mini-batch Adam or SGD.

    Parameters
    ----------
    n_hidden : int
        Width of the hidden layer.
    n_inputs, n_classes : int
        784 pixels and 10 digits for MNIST.
    seed : int
        Seeds the initial weights. Training takes its own generator for the batch
        order, so one seed per model makes the whole run repeatable.
    """

    n_hidden: int
    n_inputs: int = 784
    n_classes: int = 10
    seed: int = 0
    params: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for name in ("n_hidden", "n_inputs", "n_classes"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.params:
            self.params = self._initial_params(np.random.default_rng(self.seed))

    def _initial_params(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        # Glorot-uniform: the bound keeps the activations' variance roughly constant
        # from layer to layer, so neither layer starts saturated or silent.
        def uniform(fan_in: int, fan_out: int) -> np.ndarray:
            bound = np.sqrt(6.0 / (fan_in + fan_out))
            return rng.uniform(-bound, bound, size=(fan_in, fan_out)).astype(DTYPE)

        return {
            "w1": uniform(self.n_inputs, self.n_hidden),
            "b1": np.zeros(self.n_hidden, dtype=DTYPE),
            "w2": uniform(self.n_hidden, self.n_classes),
            "b2": np.zeros(self.n_classes, dtype=DTYPE),
        }

    # ------------------------------------------------------------------ inference

    def forward(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return ``hidden`` (n, n_hidden) after ReLU and ``probs`` (n, n_classes)."""
        p = self.params
        hidden = images @ p["w1"]  # (n, hidden)
        hidden += p["b1"]
        np.maximum(hidden, 0, out=hidden)
        logits = hidden @ p["w2"]  # (n, classes)
        logits += p["b2"]
        return hidden, softmax(logits)

    def predict_proba(self, images: np.ndarray, batch_size: int = 8192) -> np.ndarray:
        """Class probabilities (n_samples, n_classes), computed in slices.

        ``images`` must be floats scaled to [0, 1]; raw uint8 pixels are refused.
        """
        if not np.issubdtype(np.asarray(images[:0]).dtype, np.floating):
            raise TypeError(
                f"images must be floats in [0, 1], got {images.dtype}: divide by 255"
            )
        out = np.empty((len(images), self.n_classes), dtype=DTYPE)
        for start in range(0, len(images), batch_size):
            chunk = np.asarray(images[start : start + batch_size], dtype=DTYPE)
            out[start : start + batch_size] = self.forward(chunk)[1]
        return out

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Most probable digit for each image, shape (n_samples,)."""
        return self.predict_proba(images).argmax(axis=1)

    # ------------------------------------------------------------------ gradients

    def loss_and_grads(
        self, images: np.ndarray, labels: np.ndarray
    ) -> tuple[float, dict[str, np.ndarray], np.ndarray]:
        """Mean cross-entropy on one batch, its parameter gradients and the probs."""
        p = self.params
        n = len(labels)

        # forward pass
        hidden, probs = self.forward(images)
        loss = cross_entropy(probs, labels)

        # backward pass: d(loss)/d(logits) of softmax + cross-entropy is probs - onehot
        delta_out = probs.copy()
        delta_out[np.arange(n), labels] -= 1
        delta_out /= n  # (n, classes)
        grads = {
            "w2": hidden.T @ delta_out,  # (hidden, classes)
            "b2": delta_out.sum(axis=0),
        }
        delta_hidden = delta_out @ p["w2"].T  # (n, hidden)
        delta_hidden *= hidden > 0  # ReLU passes gradient only where it fired
        grads["w1"] = images.T @ delta_hidden  # (inputs, hidden)
        grads["b1"] = delta_hidden.sum(axis=0)
        return loss, grads, probs

    def input_gradient(self, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Gradient of each image's own loss with respect to its pixels.

        Per-image gradients (of the summed, not mean, loss) do not depend on how
        many images share a call, which is what an attack on each image needs. Only
        the input gradient is computed, not the weights' gradients; shape
        (n_samples, n_inputs).
        """
        images = np.asarray(images, dtype=DTYPE)
        hidden, probs = self.forward(images)
        delta_out = probs  # (n, classes); forward's buffer, free to overwrite
        delta_out[np.arange(len(labels)), labels] -= 1
        delta_hidden = delta_out @ self.params["w2"].T  # (n, hidden)
        delta_hidden *= hidden > 0
        return delta_hidden @ self.params["w1"].T  # (n, inputs)

    # ------------------------------------------------------------------ training

    def fit(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        *,
        epochs: int,
        batch_size: int,
        learning_rate: float,
        optimizer: str = "adam",
        rng: np.random.Generator,
        on_epoch: Callable[[EpochRecord], None] | None = None,
        name: str = "model",
    ) -> list[EpochRecord]:
        """Train on ``images`` (n, n_inputs) float32 and ``labels`` (n,).

        ``rng`` draws the batch order of every epoch. ``on_epoch`` receives one
        :class:`EpochRecord` per epoch (the pipeline logs it). Raises
        :class:`TrainingDivergedError` naming ``name`` and the epoch if the loss or
        a weight becomes NaN or infinite.
        """
        if optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}"
            )
        if images.dtype != DTYPE:
            raise TypeError(f"images must be float32, got {images.dtype}")
        if images.ndim != 2 or images.shape[1] != self.n_inputs:
            raise ValueError(
                f"images must have shape (n, {self.n_inputs}), got {images.shape}"
            )
        labels = np.asarray(labels, dtype=np.intp)
        n = len(labels)
        batch_size = min(batch_size, n)
        step = _adam_step if optimizer == "adam" else _sgd_step
        state = {
            key: [np.zeros_like(v), np.zeros_like(v)] for key, v in self.params.items()
        }
        batch = np.empty((batch_size, self.n_inputs), dtype=DTYPE)
        history = []
        t = 0
        for epoch in range(1, epochs + 1):
            start_time = time.perf_counter()
            order = rng.permutation(n)
            loss_sum = 0.0
            correct = 0
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                # gather into a reused buffer instead of allocating one per batch
                x = batch[: len(idx)]
                np.take(images, idx, axis=0, out=x)
                y = labels[idx]
                loss, grads, probs = self.loss_and_grads(x, y)
                loss_sum += loss * len(idx)
                correct += int((probs.argmax(axis=1) == y).sum())
                t += 1
                for key, param in self.params.items():
                    step(param, grads[key], state[key], learning_rate, t)
            seconds = time.perf_counter() - start_time
            record = EpochRecord(
                epoch=epoch,
                loss=loss_sum / n,
                train_accuracy=correct / n,
                seconds=seconds,
                samples_per_second=n / seconds if seconds > 0 else float("inf"),
            )
            if not np.isfinite(record.loss) or not self.weights_finite():
                raise TrainingDivergedError(
                    f"{name}: training diverged in epoch {epoch} (loss {record.loss}); "
                    "lower train.learning_rate and rerun"
                )
            history.append(record)
            if on_epoch is not None:
                on_epoch(record)
        return history

    def weights_finite(self) -> bool:
        return all(np.isfinite(v).all() for v in self.params.values())

    # ------------------------------------------------------------------ files

    def save(self, path: str | os.PathLike, metadata: dict | None = None) -> None:
        """Write the weights and ``metadata`` (JSON) to an ``.npz``, atomically."""
        # the structural keys last, so that metadata cannot contradict the arrays
        info = {
            **(metadata or {}),
            "format": MODEL_FORMAT,
            "n_inputs": self.n_inputs,
            "n_hidden": self.n_hidden,
            "n_classes": self.n_classes,
            "seed": self.seed,
        }
        arrays = {k: self.params[k] for k in PARAM_NAMES}
        arrays["metadata"] = np.array(json.dumps(info, sort_keys=True))
        save_npz_atomic(path, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> tuple[MLP, dict]:
        """Read a model written by :meth:`save`; returns the model and its metadata.

        Raises :class:`ModelFileError` for a file that is corrupt or not ours.
        """
        with open(path, "rb") as handle:
            is_archive = handle.read(4) == b"PK\x03\x04"  # npz files are zips
        if not is_archive:
            raise ModelFileError(
                f"{path}: not a model file (no .npz archive); delete it and rerun "
                "the pipeline to retrain it"
            )
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except FileNotFoundError:
            raise
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise ModelFileError(
                f"{path}: not a readable model file ({exc}); delete it and rerun the "
                "pipeline to retrain it"
            ) from None
        missing = [k for k in (*PARAM_NAMES, "metadata") if k not in arrays]
        if missing:
            raise ModelFileError(
                f"{path}: not a noisy-mnist model (missing {', '.join(missing)})"
            )
        try:
            info = json.loads(str(arrays["metadata"]))
        except json.JSONDecodeError:
            raise ModelFileError(f"{path}: model metadata is not valid JSON") from None
        if not isinstance(info, dict):
            raise ModelFileError(f"{path}: model metadata is not a JSON object")
        if info.get("format") != MODEL_FORMAT:
            raise ModelFileError(
                f"{path}: format {info.get('format')!r}, expected {MODEL_FORMAT!r}"
            )
        sizes = [info.get(k) for k in ("n_inputs", "n_hidden", "n_classes", "seed")]
        if not all(isinstance(v, int) and v >= 0 for v in sizes):
            raise ModelFileError(
                f"{path}: model metadata lacks valid n_inputs, n_hidden, n_classes "
                "and seed; delete the file and rerun the pipeline to retrain it"
            )
        n_in, n_hid, n_cls = sizes[:3]
        expected = {
            "w1": (n_in, n_hid),
            "b1": (n_hid,),
            "w2": (n_hid, n_cls),
            "b2": (n_cls,),
        }
        for key, shape in expected.items():
            if arrays[key].shape != shape or arrays[key].dtype != DTYPE:
                raise ModelFileError(
                    f"{path}: {key} has shape {arrays[key].shape} and dtype "
                    f"{arrays[key].dtype}, expected {shape} float32"
                )
        params = {k: arrays[k] for k in PARAM_NAMES}
        model = cls(
            n_hidden=n_hid,
            n_inputs=n_in,
            n_classes=n_cls,
            seed=info["seed"],
            params=params,
        )
        if not model.weights_finite():
            raise ModelFileError(f"{path}: weights contain NaN or infinity")
        return model, info


def _adam_step(param, grad, state, lr, t, beta1=0.9, beta2=0.999, eps=1e-8):
    """One in-place Adam update; ``state`` holds the first and second moments."""
    m, v = state
    m *= beta1
    m += (1 - beta1) * grad
    v *= beta2
    v += (1 - beta2) * np.square(grad)
    # bias correction folded into the step size, as in the Adam paper's section 2;
    # a plain Python float keeps the update in float32 (an np.float64 would not)
    step_size = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
    update = np.sqrt(v)
    update += eps
    np.divide(m, update, out=update)
    update *= step_size
    param -= update


def _sgd_step(param, grad, state, lr, t, momentum=0.9):
    """One in-place SGD update with classical momentum (state[0] is the velocity)."""
    velocity = state[0]
    velocity *= momentum
    velocity -= lr * grad
    param += velocity
