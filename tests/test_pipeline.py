"""The real Snakefile, end to end, on a small configuration in a temporary folder.

One module-scoped run builds everything once (about half a minute); the tests then
read its outputs and ask Snakemake what a rerun or a changed setting would redo.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_PARTS = [
    "Snakefile",
    "config.yaml",
    "rules",
    "scripts",
    "schemas",
    "report",
    "envs",
    "src",
]

SMALL = {
    "noise": {"levels": [0, 0.2]},
    "model": {"hidden_sizes": [4, 8]},
    "train": {"seeds": [0, 1], "epochs": 2, "batch_size": 64},
}

pytestmark = pytest.mark.slow


def copy_workflow(dest: Path) -> Path:
    for part in WORKFLOW_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(
                src, dest / part, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy(src, dest / part)
    return dest


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


def write_config(workdir: Path, name: str, changes: dict) -> str:
    (workdir / name).write_text(yaml.safe_dump(changes))
    return name


def planned_jobs(result) -> dict:
    """Rule name -> job count from the table a dry run prints."""
    counts = {}
    for line in (result.stdout + result.stderr).splitlines():
        match = re.fullmatch(r"\s*([a-z_]+)\s+(\d+)\s*", line)
        if match and match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    return counts


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
    """The accuracy table of report.md as rows of cells (header first)."""
    section = report.split("## Eval accuracy (%)")[1].split("##")[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [
        [c.strip() for c in line.strip("|").split("|")]
        for i, line in enumerate(lines)
        if i != 1
    ]  # line 1 is the |---|---| rule


def test_report_table_cells_are_means_of_the_model_files(run_dir):
    metrics = read_metrics(run_dir)
    assert len(metrics) == 8  # 2 levels x 2 hidden sizes x 2 seeds
    table = report_table((run_dir / "results/report.md").read_text())
    assert table[0] == ["noise", "4 hidden", "8 hidden"]
    assert [row[0] for row in table[1:]] == ["0", "0.2"]
    for row in table[1:]:
        for hidden, cell in zip([4, 8], row[1:]):
            chosen = (metrics["noise"] == float(row[0])) & (metrics["hidden"] == hidden)
            values = metrics.loc[chosen, "accuracy"].to_numpy()
            assert len(values) == 2
            expected = f"{100 * values.mean():.3f} ± {100 * values.std(ddof=1):.3f}"
            assert cell == expected


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
        "accuracy_vs_noise.png",
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
    jobs = planned_jobs(snakemake(run_dir, "--configfile", "more.yaml", "-n"))
    assert jobs["train"] == 4  # the new level only: 2 hidden sizes x 2 seeds
    assert jobs["evaluate"] == 4
    assert jobs["noisy_set"] == 1
    assert jobs["report"] == 1
    assert "split" not in jobs and "get_data" not in jobs


def test_changed_epochs_retrains_everything_but_keeps_the_data(run_dir):
    write_config(
        run_dir, "epochs.yaml", dict(SMALL, train={**SMALL["train"], "epochs": 3})
    )
    jobs = planned_jobs(snakemake(run_dir, "--configfile", "epochs.yaml", "-n"))
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
