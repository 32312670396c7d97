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
from threadpoolctl import threadpool_limits

from noisy_mnist import parallel
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
        expected = self._shapes()
        if set(self.params) != set(expected):
            raise ValueError(
                f"params must have exactly the keys {', '.join(PARAM_NAMES)}, "
                f"got {', '.join(sorted(self.params))}"
            )
        for key, shape in expected.items():
            value = self.params[key]
            if value.shape != shape or value.dtype != DTYPE:
                raise ValueError(
                    f"params[{key!r}] must be float32 with shape {shape}, got "
                    f"{value.dtype} with shape {value.shape}"
                )

    def _shapes(self) -> dict[str, tuple[int, ...]]:
        return {
            "w1": (self.n_inputs, self.n_hidden),
            "b1": (self.n_hidden,),
            "w2": (self.n_hidden, self.n_classes),
            "b2": (self.n_classes,),
        }

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

    def forward(
        self, images: np.ndarray, work: dict[str, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return ``hidden`` (n, n_hidden) after ReLU and ``probs`` (n, n_classes).

        ``work`` may hold preallocated ``hidden`` and ``logits`` buffers with at
        least n rows; training passes them so that no batch allocates memory.
        """
        p = self.params
        n = len(images)
        work = work or {}
        hidden = work["hidden"][:n] if "hidden" in work else None
        logits = work["logits"][:n] if "logits" in work else None
        hidden = np.matmul(images, p["w1"], out=hidden)  # (n, hidden)
        hidden += p["b1"]
        np.maximum(hidden, 0, out=hidden)
        logits = np.matmul(hidden, p["w2"], out=logits)  # (n, classes)
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
    ) -> tuple[float, dict[str, np.ndarray]]:
        """Mean cross-entropy on one batch and its gradients, one array per parameter.

        This runs the same code as training (:meth:`_backprop`), with fresh arrays.
        """
        grads = {k: np.empty_like(v) for k, v in self.params.items()}
        loss, _ = self._backprop(images, np.asarray(labels, np.intp), grads, scale=1.0)
        return loss, grads

    def _backprop(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        grads: dict[str, np.ndarray],
        scale: float,
        work: dict[str, np.ndarray] | None = None,
    ) -> tuple[float, int]:
        """Write ``scale`` times the gradients of the batch's mean loss into ``grads``.

        Returns the mean loss and how many images were classified correctly (before
        the update). ``scale`` lets the optimizer fold a constant factor into the
        backward pass, where it costs nothing; ``work`` holds reusable buffers.
        """
        p = self.params
        n = len(labels)
        work = work or {}

        # forward pass
        hidden, probs = self.forward(images, work)
        loss = cross_entropy(probs, labels)
        correct = int(np.count_nonzero(probs.argmax(axis=1) == labels))

        # backward pass: d(loss)/d(logits) of softmax + cross-entropy is
        # (probs - onehot) / n; probs' buffer is reused for it
        delta_out = probs
        delta_out[np.arange(n), labels] -= 1
        delta_out *= scale / n  # (n, classes)
        np.matmul(hidden.T, delta_out, out=grads["w2"])  # (hidden, classes)
        delta_out.sum(axis=0, out=grads["b2"])
        delta_hidden = work["delta_hidden"][:n] if "delta_hidden" in work else None
        delta_hidden = np.matmul(delta_out, p["w2"].T, out=delta_hidden)  # (n, hidden)
        delta_hidden *= hidden > 0  # ReLU passes gradient only where it fired
        np.matmul(images.T, delta_hidden, out=grads["w1"])  # (inputs, hidden)
        delta_hidden.sum(axis=0, out=grads["b1"])
        return loss, correct

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
        workers: int = 1,
    ) -> list[EpochRecord]:
        """Train on ``images`` (n, n_inputs) float32 and ``labels`` (n,).

        ``rng`` draws the batch order of every epoch. ``on_epoch`` receives one
        :class:`EpochRecord` per epoch (the pipeline logs it). Raises
        :class:`TrainingDivergedError` naming ``name`` and the epoch if the loss or
        a weight becomes NaN or infinite.

        ``workers`` > 1 splits every mini-batch over that many processes, each
        with one BLAS thread (see :mod:`noisy_mnist.parallel`); give each a core.
        Where worker processes are unsupported, training stays in one process.

        Training first copies the parameters into one buffer: afterwards
        ``self.params`` is a new dict of views into it, and arrays taken from the
        old dict are no longer updated.
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
        if not isinstance(workers, (int, np.integer)) or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        labels = np.asarray(labels, dtype=np.intp)
        n = len(labels)
        batch_size = min(batch_size, n)
        workers = parallel.usable_workers(workers, batch_size)
        trainer = _Trainer(
            self, images, labels, batch_size, optimizer, learning_rate, workers
        )
        history = []

        def end_of_epoch(epoch: int, seconds: float) -> None:
            loss_sum, correct = trainer.stats.sum(axis=0)
            record = EpochRecord(
                epoch=epoch,
                loss=float(loss_sum) / n,
                train_accuracy=int(correct) / n,
                seconds=seconds,
                samples_per_second=n / seconds if seconds > 0 else float("inf"),
            )
            if not np.isfinite(record.loss) or not self.weights_finite():
                raise TrainingDivergedError(
                    f"{name}: training diverged in epoch {epoch} "
                    f"(loss {record.loss}); lower train.learning_rate and rerun"
                )
            history.append(record)
            if on_epoch is not None:
                on_epoch(record)

        try:
            trainer.train(epochs, rng, end_of_epoch)
        finally:
            trainer.release_shared_memory()
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
        params = {k: arrays[k] for k in PARAM_NAMES}
        try:
            model = cls(
                n_hidden=n_hid,
                n_inputs=n_in,
                n_classes=n_cls,
                seed=info["seed"],
                params=params,
            )
        except ValueError as exc:  # a shape or dtype that the sizes contradict
            raise ModelFileError(f"{path}: {exc}") from None
        if not model.weights_finite():
            raise ModelFileError(f"{path}: weights contain NaN or infinity")
        return model, info


class _Trainer:
    """One :meth:`MLP.fit` call, run by ``workers`` processes (often just one).

    All parameters live in one flat vector, and each worker's gradients in another,
    so that the optimizer updates every parameter with one pass per operation. With
    several workers these vectors are in shared memory (:mod:`noisy_mnist.parallel`)
    and worker ``rank`` takes rows ``rank*k .. (rank+1)*k - 1`` of every batch (k =
    the batch size / workers, rounded up). After the first barrier of a batch, each
    worker adds up every worker's gradients for its own slice of the parameters and
    updates that slice; the second barrier ends the batch.
    """

    def __init__(
        self, model, images, labels, batch_size, optimizer, learning_rate, workers
    ):
        self.model = model
        self.images, self.labels = images, labels
        self.batch_size = batch_size
        self.optimizer = _Adam if optimizer == "adam" else _SGD
        self.learning_rate = learning_rate
        self.workers = workers
        self.size = sum(v.size for v in model.params.values())
        specs = {
            "params": ((self.size,), DTYPE),
            "order": ((len(labels),), np.intp),
            "stats": ((workers, 2), np.float64),
            **{f"grads{r}": ((self.size,), DTYPE) for r in range(workers)},
        }
        if workers > 1:
            self._shared = parallel.SharedArrays(specs)
            arrays = self._shared.arrays
        else:
            arrays = {k: np.zeros(shape, dtype) for k, (shape, dtype) in specs.items()}
        self.flat_params = arrays["params"]
        model.params = _views(self.flat_params, model.params, copy=True)
        self.flat_grads = [arrays[f"grads{r}"] for r in range(workers)]
        self.order = arrays["order"]  # the batch order of the current epoch
        self.stats = arrays["stats"]  # per worker: summed loss, correct count

    def release_shared_memory(self) -> None:
        """Give the model parameters of its own again, out of shared memory.

        After a failed run they are as the run left them, possibly half-updated.
        """
        if self.workers > 1:
            self.flat_params = self.flat_params.copy()
            self.model.params = _views(self.flat_params, self.model.params, copy=False)
            self._shared = None

    def train(self, epochs: int, rng, end_of_epoch) -> None:
        """Worker 0's side of the run; it starts and stops the other workers.

        ``end_of_epoch(epoch, seconds)`` runs in worker 0 after each epoch and may
        raise to stop training.
        """
        if self.workers == 1:
            self._run(0, _NoBarrier(), epochs, rng, end_of_epoch)
            return

        def other_worker(rank, barrier):
            self._run(rank, barrier, epochs, None, None)

        # each worker process runs BLAS single-threaded, so that workers = cores
        with threadpool_limits(1), parallel.Team(self.workers, other_worker) as team:
            self._run(0, team.barrier, epochs, rng, end_of_epoch)

    def _run(self, rank, barrier, epochs, rng, end_of_epoch) -> None:
        """Every worker's epoch loop; ``rng`` and ``end_of_epoch`` are worker 0's."""
        state = self._worker_state(rank)
        n = len(self.labels)
        for epoch in range(1, epochs + 1):
            start_time = time.perf_counter()
            if rank == 0:
                self.order[:] = rng.permutation(n)
            barrier.wait()  # the batch order is drawn
            self._run_epoch(rank, barrier, *state)
            barrier.wait()  # every worker's statistics are written
            if rank == 0:
                end_of_epoch(epoch, time.perf_counter() - start_time)

    def _worker_state(self, rank: int) -> tuple:
        """The optimizer for worker ``rank``'s slice of the parameters, the views
        it writes its gradients through, and its reusable batch buffers."""
        model, workers = self.model, self.workers
        lo, hi = self.size * rank // workers, self.size * (rank + 1) // workers
        update = self.optimizer(self.flat_params[lo:hi], self.learning_rate)
        grads = _views(self.flat_grads[rank], model.params, copy=False)
        parts = [g[lo:hi] for g in self.flat_grads]  # every worker's, for my slice
        total = parts[0] if workers == 1 else np.empty_like(parts[0])
        rows = -(-self.batch_size // workers)  # of every batch, at most
        work = {
            "batch": np.empty((rows, model.n_inputs), dtype=DTYPE),
            "hidden": np.empty((rows, model.n_hidden), dtype=DTYPE),
            "logits": np.empty((rows, model.n_classes), dtype=DTYPE),
            "delta_hidden": np.empty((rows, model.n_hidden), dtype=DTYPE),
        }
        return update, grads, parts, total, work

    def _run_epoch(self, rank, barrier, update, grads, parts, total, work) -> None:
        """Worker ``rank``'s part of one epoch; leaves its statistics in ``stats``."""
        model, images, labels = self.model, self.images, self.labels
        rows = len(work["batch"])
        loss_sum, correct = 0.0, 0
        for start in range(0, len(labels), self.batch_size):
            batch = self.order[start : start + self.batch_size]
            idx = batch[rank * rows : (rank + 1) * rows]
            if len(idx):
                x = work["batch"][: len(idx)]
                np.take(images, idx, axis=0, out=x)
                y = labels[idx]
                # _backprop averages over its rows; the batch's mean is over all
                scale = update.grad_scale * (len(idx) / len(batch))
                loss, hits = model._backprop(x, y, grads, scale, work)
                loss_sum += loss * len(idx)
                correct += hits
            else:  # a last batch smaller than the number of workers
                self.flat_grads[rank][:] = 0
            barrier.wait()  # every worker's gradients are written
            if self.workers > 1:
                np.add(parts[0], parts[1], out=total)
                for part in parts[2:]:
                    total += part
            update(total)
            barrier.wait()  # every slice of the parameters is updated
        self.stats[rank] = (loss_sum, correct)


class _NoBarrier:
    """The barrier of a run with one worker: nobody to wait for."""

    def wait(self) -> None:
        pass


def _views(
    flat: np.ndarray, like: dict[str, np.ndarray], copy: bool
) -> dict[str, np.ndarray]:
    """Views of ``flat`` shaped like the arrays of ``like``, in its order.

    With ``copy``, the views are filled with the values of ``like``.
    """
    views = {}
    offset = 0
    for name, array in like.items():
        view = flat[offset : offset + array.size].reshape(array.shape)
        if copy:
            view[...] = array
        views[name] = view
        offset += array.size
    return views


class _Adam:
    """Adam (Kingma and Ba, 2015) on one flat float32 vector, updated in place.

    The update is the one in section 2 of the paper, as scikit-learn applies it:
    bias correction folded into the step size, ``eps`` added to the uncorrected
    ``sqrt(v)``. For gradients much larger than ``eps`` this equals the textbook
    form ``m_hat / (sqrt(v_hat) + eps)``; for gradients near ``eps`` it takes
    smaller steps early on.

    It asks the backward pass for gradients already multiplied by
    ``grad_scale = 1 - beta1`` and keeps the second moment multiplied by
    ``(1 - beta1)**2 / (1 - beta2)``. Both moment updates then need no separate
    scaling pass, and every update is ten passes over the parameters with no
    temporary arrays. The tests check it against a float64 version of the update.
    """

    def __init__(self, flat_params, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        self.flat_params, self.lr = flat_params, lr
        self.beta1, self.beta2 = beta1, beta2
        self.grad_scale = 1 - beta1
        # sqrt(true second moment) = sqrt(stored one) * ratio
        self._ratio = math.sqrt(1 - beta2) / (1 - beta1)
        self._eps = eps / self._ratio
        self.m = np.zeros_like(flat_params)
        self.v = np.zeros_like(flat_params)
        self._scratch = np.empty_like(flat_params)
        self.t = 0

    def __call__(self, scaled_grad: np.ndarray) -> None:
        m, v, scratch = self.m, self.v, self._scratch
        self.t += 1
        m *= self.beta1
        m += scaled_grad
        v *= self.beta2
        np.square(scaled_grad, out=scratch)
        v += scratch
        # plain Python floats keep the update in float32 (an np.float64 would not)
        bias = math.sqrt(1 - self.beta2**self.t) / (1 - self.beta1**self.t)
        step_size = self.lr * bias / self._ratio
        np.sqrt(v, out=scratch)
        scratch += self._eps
        np.divide(m, scratch, out=scratch)
        scratch *= step_size
        self.flat_params -= scratch


class _SGD:
    """SGD with classical momentum on one flat float32 vector, in place.

    The gradient arrives multiplied by ``grad_scale = -lr``, so the velocity update
    is ``v = momentum * v + scaled_grad``, with no scaling pass.
    """

    def __init__(self, flat_params, lr, momentum=0.9):
        self.flat_params, self.momentum = flat_params, momentum
        self.grad_scale = -lr
        self.velocity = np.zeros_like(flat_params)

    def __call__(self, scaled_grad: np.ndarray) -> None:
        self.velocity *= self.momentum
        self.velocity += scaled_grad
        self.flat_params += self.velocity
