"""The MLP: gradients against finite differences, learning, saving and loading."""

import multiprocessing
import os

import numpy as np
import pytest
from small_fit import fit_small

from noisy_mnist import parallel
from noisy_mnist.files import save_npz_atomic
from noisy_mnist.mlp import MLP, ModelFileError, TrainingDivergedError

needs_workers = pytest.mark.skipif(
    not parallel.supported(), reason="worker processes need Linux on x86-64"
)


def _loss64(model, images, labels):
    """The mean cross-entropy recomputed independently in float64."""
    p = {k: v.astype(np.float64) for k, v in model.params.items()}
    hidden = np.maximum(images.astype(np.float64) @ p["w1"] + p["b1"], 0)
    logits = hidden @ p["w2"] + p["b2"]
    logits -= logits.max(axis=1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(len(labels)), labels].mean()


@pytest.fixture
def small_problem():
    rng = np.random.default_rng(3)
    images = rng.uniform(0, 1, size=(7, 12)).astype(np.float32)
    labels = rng.integers(0, 4, size=7)
    model = MLP(n_hidden=5, n_inputs=12, n_classes=4, seed=11)
    # move biases off zero so that their gradients are tested too
    model.params["b1"] += rng.normal(0, 0.3, size=5).astype(np.float32)
    model.params["b2"] += rng.normal(0, 0.3, size=4).astype(np.float32)
    return model, images, labels


def test_parameter_gradients_match_central_differences(small_problem):
    model, images, labels = small_problem
    _, grads = model.loss_and_grads(images, labels)
    h = 1e-4
    for key, param in model.params.items():
        numeric = np.zeros(param.shape)
        for idx in np.ndindex(param.shape):
            saved = param[idx]
            param[idx] = saved + h
            up = _loss64(model, images, labels)
            param[idx] = saved - h
            down = _loss64(model, images, labels)
            param[idx] = saved
            numeric[idx] = (up - down) / (2 * h)
        np.testing.assert_allclose(
            grads[key], numeric, rtol=2e-2, atol=2e-4, err_msg=f"gradient of {key}"
        )


def test_input_gradient_matches_central_differences(small_problem):
    model, images, labels = small_problem
    grad = model.input_gradient(images, labels)
    h = 1e-3
    x = images.astype(np.float64)
    n = len(labels)
    for i in range(n):
        for j in range(images.shape[1]):
            up, down = x.copy(), x.copy()
            up[i, j] += h
            down[i, j] -= h
            # input_gradient is of the summed loss, hence the factor n
            numeric = n * (_loss64(model, up, labels) - _loss64(model, down, labels))
            numeric /= 2 * h
            assert grad[i, j] == pytest.approx(numeric, rel=2e-2, abs=1e-4)


def test_loss_agrees_with_float64_reference(small_problem):
    model, images, labels = small_problem
    loss, _ = model.loss_and_grads(images, labels)
    assert loss == pytest.approx(_loss64(model, images, labels), rel=1e-5)
    _, probs = model.forward(images)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-6)


def test_softmax_survives_huge_logits():
    model = MLP(n_hidden=3, n_inputs=2, n_classes=2, seed=0)
    model.params["w2"][:] = 1e30
    probs = model.predict_proba(np.ones((2, 2), dtype=np.float32))
    assert np.isfinite(probs).all()


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_separable_data_is_learned_perfectly(optimizer):
    # four well-separated clusters; any working MLP classifies them all correctly
    rng = np.random.default_rng(0)
    centers = rng.uniform(0, 1, size=(4, 20)).astype(np.float32)
    labels = np.repeat(np.arange(4), 50)
    images = centers[labels] + rng.normal(0, 0.02, size=(200, 20)).astype(np.float32)
    model = MLP(n_hidden=16, n_inputs=20, n_classes=4, seed=1)
    history = model.fit(
        images,
        labels,
        epochs=30,
        batch_size=16,
        learning_rate=0.01,
        optimizer=optimizer,
        rng=np.random.default_rng(2),
    )
    assert (model.predict(images) == labels).mean() == 1.0
    assert history[-1].loss < history[0].loss
    assert history[-1].train_accuracy == 1.0


def test_same_seeds_give_identical_weights():
    rng = np.random.default_rng(5)
    images = rng.uniform(0, 1, size=(64, 10)).astype(np.float32)
    labels = rng.integers(0, 3, size=64)

    def train():
        model = MLP(n_hidden=8, n_inputs=10, n_classes=3, seed=4)
        model.fit(
            images,
            labels,
            epochs=3,
            batch_size=10,
            learning_rate=0.01,
            rng=np.random.default_rng(9),
        )
        return model.params

    first, second = train(), train()
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_divergence_names_the_model_and_epoch():
    images = np.ones((8, 4), dtype=np.float32)
    labels = np.zeros(8, dtype=int)
    model = MLP(n_hidden=3, n_inputs=4, n_classes=2, seed=0)
    model.params["w1"][:] = np.inf
    with pytest.raises(
        TrainingDivergedError, match="h3-n0.1-s0: training diverged in epoch 1"
    ):
        model.fit(
            images,
            labels,
            epochs=2,
            batch_size=4,
            learning_rate=0.1,
            rng=np.random.default_rng(0),
            name="h3-n0.1-s0",
        )


def test_fit_refuses_float64_and_unknown_optimizer():
    model = MLP(n_hidden=3, n_inputs=4, n_classes=2)
    labels = np.zeros(2, dtype=int)
    with pytest.raises(TypeError, match="float32"):
        model.fit(
            np.zeros((2, 4)),
            labels,
            epochs=1,
            batch_size=2,
            learning_rate=0.1,
            rng=np.random.default_rng(0),
        )
    with pytest.raises(ValueError, match="optimizer must be one of adam, sgd"):
        model.fit(
            np.zeros((2, 4), np.float32),
            labels,
            epochs=1,
            batch_size=2,
            learning_rate=0.1,
            optimizer="rmsprop",
            rng=np.random.default_rng(0),
        )


def test_save_load_round_trip(tmp_path):
    model = MLP(n_hidden=6, n_inputs=5, n_classes=3, seed=7)
    model.save(tmp_path / "m.npz", metadata={"noise": 0.2})
    loaded, info = MLP.load(tmp_path / "m.npz")
    assert info["noise"] == 0.2 and info["n_hidden"] == 6
    for key in model.params:
        np.testing.assert_array_equal(model.params[key], loaded.params[key])
    assert not list(tmp_path.glob(".tmp-*")), "temporary file left behind"


def test_truncated_model_file_is_refused(tmp_path):
    path = tmp_path / "m.npz"
    MLP(n_hidden=6, n_inputs=5, n_classes=3).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="m.npz: not a readable model file"):
        MLP.load(path)


def test_foreign_npz_is_refused(tmp_path):
    path = tmp_path / "other.npz"
    save_npz_atomic(path, weights=np.zeros(3))
    with pytest.raises(ModelFileError, match="missing w1, b1, w2, b2, metadata"):
        MLP.load(path)


def test_pickled_object_array_is_not_loaded(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, w1=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ModelFileError, match="not a readable model file"):
        MLP.load(path)


@pytest.mark.parametrize("grad_size", [1.0, 1e-7])
def test_adam_matches_a_float64_reference(grad_size):
    # gradients near eps (1e-7) show where eps is added, large ones the rest
    from noisy_mnist.mlp import _Adam

    rng = np.random.default_rng(0)
    param = rng.normal(size=15).astype(np.float32)
    reference = param.astype(np.float64)
    adam = _Adam(param, lr=0.01)
    m = np.zeros_like(reference)
    v = np.zeros_like(reference)
    for t in range(1, 6):
        grad = rng.normal(size=param.shape) * grad_size
        adam((grad * adam.grad_scale).astype(np.float32))
        reference -= _adam_step64(m, v, grad, t, lr=0.01)
    assert param.dtype == np.float32
    np.testing.assert_allclose(param, reference, rtol=1e-5, atol=1e-6)


def _adam_step64(m, v, grad, t, lr, b1=0.9, b2=0.999, eps=1e-8):
    """Adam's step in float64, as in section 2 of Kingma and Ba: the bias
    correction goes into the step size and eps is added to the uncorrected sqrt(v).
    Updates ``m`` and ``v`` in place and returns the step."""
    m[...] = b1 * m + (1 - b1) * grad
    v[...] = b2 * v + (1 - b2) * grad**2
    step_size = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
    return step_size * m / (np.sqrt(v) + eps)


def _reference_fit(model, images, labels, epochs, batch_size, lr, optimizer, seed):
    """Textbook mini-batch training in float64, written separately from mlp.py."""
    p = {k: v.astype(np.float64) for k, v in model.params.items()}
    x_all = images.astype(np.float64)
    state = {k: [np.zeros_like(v), np.zeros_like(v)] for k, v in p.items()}
    rng = np.random.default_rng(seed)
    t = 0
    for _ in range(epochs):
        order = rng.permutation(len(labels))
        for start in range(0, len(labels), batch_size):
            idx = order[start : start + batch_size]
            x, y = x_all[idx], labels[idx]
            hidden = np.maximum(x @ p["w1"] + p["b1"], 0)
            logits = hidden @ p["w2"] + p["b2"]
            probs = np.exp(logits - logits.max(axis=1, keepdims=True))
            probs /= probs.sum(axis=1, keepdims=True)
            d_out = (probs - np.eye(probs.shape[1])[y]) / len(y)
            d_hidden = (d_out @ p["w2"].T) * (hidden > 0)
            grads = {
                "w1": x.T @ d_hidden,
                "b1": d_hidden.sum(axis=0),
                "w2": hidden.T @ d_out,
                "b2": d_out.sum(axis=0),
            }
            t += 1
            for k, g in grads.items():
                first, second = state[k]
                if optimizer == "adam":
                    p[k] -= _adam_step64(first, second, g, t, lr)
                else:  # momentum 0.9
                    first[...] = 0.9 * first - lr * g
                    p[k] += first
    return p


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize(
    "workers",
    [
        1,
        pytest.param(2, marks=needs_workers),
        # the last batch (5 rows) leaves the third of 3 workers empty-handed
        pytest.param(3, marks=needs_workers),
    ],
)
def test_fit_follows_a_float64_reference_training_run(optimizer, workers):
    # several epochs of real updates, with a partial last batch, compared with an
    # independent float64 implementation fed the same batch order
    rng = np.random.default_rng(8)
    images = rng.uniform(0, 1, size=(45, 12)).astype(np.float32)
    labels = rng.integers(0, 4, size=45)
    model = MLP(n_hidden=6, n_inputs=12, n_classes=4, seed=2)
    expected = _reference_fit(model, images, labels, 3, 8, 0.01, optimizer, seed=5)
    model.fit(
        images,
        labels,
        epochs=3,
        batch_size=8,
        learning_rate=0.01,
        optimizer=optimizer,
        rng=np.random.default_rng(5),
        workers=workers,
    )
    initial = MLP(n_hidden=6, n_inputs=12, n_classes=4, seed=2).params
    for key, value in expected.items():
        assert model.params[key].dtype == np.float32
        # compare the change each weight went through, so that small changes count
        change, expected_change = model.params[key] - initial[key], value - initial[key]
        scale = np.abs(expected_change).max()
        assert scale > 0
        np.testing.assert_allclose(change, expected_change, rtol=0, atol=1e-3 * scale)


def test_params_of_the_wrong_shape_dtype_or_name_are_refused():
    good = MLP(n_hidden=3, n_inputs=4, n_classes=2).params
    with pytest.raises(ValueError, match="exactly the keys w1, b1, w2, b2"):
        MLP(n_hidden=3, n_inputs=4, n_classes=2, params={**good, "extra": good["b1"]})
    with pytest.raises(ValueError, match=r"params\['w1'\] must be float32"):
        MLP(n_hidden=3, n_inputs=4, n_classes=2, params={**good, "w1": good["w2"]})
    with pytest.raises(ValueError, match="got float64"):
        MLP(
            n_hidden=3,
            n_inputs=4,
            n_classes=2,
            params={**good, "b2": good["b2"].astype(np.float64)},
        )


def test_a_model_file_whose_arrays_contradict_its_sizes_is_refused(tmp_path):
    model = MLP(n_hidden=3, n_inputs=4, n_classes=2)
    path = tmp_path / "model.npz"
    model.save(path)
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["w1"] = np.zeros((4, 5), np.float32)
    save_npz_atomic(path, **arrays)
    with pytest.raises(ModelFileError, match=r"model.npz: params\['w1'\] must be"):
        MLP.load(path)


def test_input_gradient_of_an_image_ignores_its_batch_mates(small_problem):
    model, images, labels = small_problem
    together = model.input_gradient(images, labels)
    alone = model.input_gradient(images[2:3], labels[2:3])
    np.testing.assert_allclose(together[2:3], alone, rtol=1e-5, atol=1e-7)


def test_predict_refuses_unscaled_pixels():
    model = MLP(n_hidden=3, n_inputs=4, n_classes=2)
    with pytest.raises(TypeError, match="divide by 255"):
        model.predict(np.zeros((2, 4), dtype=np.uint8))


def test_metadata_cannot_overwrite_the_structure(tmp_path):
    model = MLP(n_hidden=3, n_inputs=4, n_classes=2, seed=5)
    model.save(tmp_path / "m.npz", metadata={"n_hidden": 99, "format": "x"})
    _, info = MLP.load(tmp_path / "m.npz")
    assert info["n_hidden"] == 3


def test_metadata_without_sizes_is_refused(tmp_path):
    model = MLP(n_hidden=3, n_inputs=4, n_classes=2)
    arrays = dict(model.params)
    arrays["metadata"] = np.array('{"format": "noisy-mnist-mlp/1"}')
    save_npz_atomic(tmp_path / "m.npz", **arrays)
    with pytest.raises(ModelFileError, match="lacks valid n_inputs"):
        MLP.load(tmp_path / "m.npz")


@needs_workers
def test_workers_give_the_same_weights_run_after_run():
    first, history = fit_small(workers=2)
    second, _ = fit_small(workers=2)
    for key in first.params:
        np.testing.assert_array_equal(first.params[key], second.params[key])
    # statistics come from both workers: the loss matches one process's
    single, single_history = fit_small(workers=1)
    assert history[-1].loss == pytest.approx(single_history[-1].loss, rel=1e-4)
    assert history[-1].train_accuracy == single_history[-1].train_accuracy
    assert multiprocessing.active_children() == []


@needs_workers
def test_a_failing_worker_stops_training_with_its_error(monkeypatch):
    parent = os.getpid()
    backprop = MLP._backprop

    def fail_in_workers(self, *args, **kwargs):
        if os.getpid() != parent:
            raise MemoryError("simulated out of memory")
        return backprop(self, *args, **kwargs)

    monkeypatch.setattr(MLP, "_backprop", fail_in_workers)
    with pytest.raises(
        parallel.WorkerError,
        match="training worker 1 stopped: MemoryError: simulated out of memory",
    ):
        fit_small(workers=2)
    assert multiprocessing.active_children() == []


@needs_workers
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_divergence_with_workers_stops_them_too():
    model = MLP(n_hidden=3, n_inputs=4, n_classes=2, seed=0)
    model.params["w1"][:] = np.inf
    with pytest.raises(TrainingDivergedError, match="diverged in epoch 1"):
        model.fit(
            np.ones((8, 4), dtype=np.float32),
            np.zeros(8, dtype=int),
            epochs=3,
            batch_size=4,
            learning_rate=0.1,
            rng=np.random.default_rng(0),
            workers=2,
        )
    assert multiprocessing.active_children() == []


def test_without_worker_support_training_stays_in_one_process(monkeypatch):
    single, _ = fit_small(workers=1)
    monkeypatch.setattr(parallel, "supported", lambda: False)
    fallback, _ = fit_small(workers=4)
    for key in single.params:
        np.testing.assert_array_equal(single.params[key], fallback.params[key])


@pytest.mark.parametrize("workers", [0, -1, 1.5, "2"])
def test_workers_must_be_a_positive_integer(workers):
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        fit_small(workers=workers)
