"""The attacks and the noisy eval copies."""

import numpy as np
import pytest

from noisy_mnist.datasets import add_noise, noise_generator
from noisy_mnist.mlp import MLP
from noisy_mnist.robustness import adversarial_accuracy, fgsm, noisy_eval_accuracy, pgd


@pytest.fixture
def trained():
    # ten prototype "digits" and noisy copies of them: learnable, yet attackable
    rng = np.random.default_rng(1)
    prototypes = rng.integers(0, 256, size=(10, 784))
    labels = np.repeat(np.arange(10), 6)
    noise = rng.integers(-60, 61, size=(60, 784))
    images = np.clip(prototypes[labels] + noise, 0, 255).astype(np.uint8)
    model = MLP(n_hidden=16, seed=0)
    model.fit(
        images / np.float32(255),
        labels,
        epochs=20,
        batch_size=20,
        learning_rate=0.003,
        rng=np.random.default_rng(2),
    )
    return model, images, labels


def test_one_step_pgd_is_fgsm(trained):
    # one step of 2.5 epsilon, projected back to the epsilon-ball, is a step of
    # epsilon in the gradient's sign: the same point FGSM takes
    model, images, labels = trained
    clean = images / np.float32(255)
    one_step = pgd(model, clean, labels, 0.05, steps=1)
    np.testing.assert_array_equal(one_step, fgsm(model, clean, labels, 0.05))


def test_attacks_stay_in_the_ball_and_the_pixel_range(trained):
    model, images, labels = trained
    clean = images / np.float32(255)
    for attacked in (
        fgsm(model, clean, labels, 0.1),
        pgd(model, clean, labels, 0.1, steps=5),
    ):
        assert np.abs(attacked - clean).max() <= 0.1 + 1e-6
        assert attacked.min() >= 0 and attacked.max() <= 1


def test_attacks_hurt_and_pgd_at_least_as_much_as_its_own_iterates(trained):
    model, images, labels = trained
    scores = adversarial_accuracy(model, images, labels, [0, 0.05], pgd_steps=5)
    clean = (model.predict(images / np.float32(255)) == labels).mean()
    assert scores["fgsm"][0.0] == scores["pgd"][0.0] == clean
    assert clean == 1.0
    assert scores["fgsm"][0.05] < clean and scores["pgd"][0.05] < clean


def test_noisy_eval_copies_are_the_same_for_every_model(trained):
    model, images, labels = trained
    other = MLP(n_hidden=16, seed=9)
    levels = [0.0, 0.5]
    first = noisy_eval_accuracy(model, images, labels, levels, 0.1, seed=11)
    # recompute independently from the documented recipe
    for level in levels:
        noisy = add_noise(images, level, 0.1, noise_generator(11, level, "eval"))
        assert first[level] == (model.predict(noisy) == labels).mean()
        assert (
            noisy_eval_accuracy(other, images, labels, [level], 0.1, 11)[level]
            == (other.predict(noisy) == labels).mean()
        )


def test_eval_noise_differs_from_training_noise_with_equal_seeds(trained):
    _, images, _ = trained
    train = add_noise(images, 0.3, 0.1, noise_generator(5, 0.3, "train"))
    evaluation = add_noise(images, 0.3, 0.1, noise_generator(5, 0.3, "eval"))
    assert not np.array_equal(train, evaluation)
