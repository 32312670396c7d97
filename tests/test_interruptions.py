"""Killed runs, reruns, and broken model files, on the real Snakefile.

A run is killed while a model is training -- hard (SIGKILL to the whole process
group: power cut, OOM killer, batch system) and soft (SIGINT to the group: Ctrl-C)
-- and then rerun the way a user would. The finished outputs must equal those of an
uninterrupted run, and at no time may a truncated model, metrics, table or report
file lie in results/: every file is written to a temporary name and renamed.

The grid trains in ``noise.mode: augment``, so the comparison with the uninterrupted
run also checks that two runs of augment mode give identical weights
(tests/test_pipeline.py checks that for ``replace``).

Independent runs start together (the machine has cores to spare while one run
waits on a single job); which run is where never matters, because every kill is
triggered by what the training log says, not by a clock.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from workflow_copy import copy_workflow

from noisy_mnist.mlp import MLP

# h128 trains for about a second on a fast machine: long enough to be killed in
# the middle, short enough to be trained twice per test
SETTINGS = {
    "noise": {"levels": [0.2], "mode": "augment"},
    "model": {"hidden_sizes": [4, 128]},
    "train": {"seeds": [0], "epochs": 20, "batch_size": 64},
    "evaluation": {"noise_levels": [0], "epsilons": [0], "pgd_steps": 1},
}
MODELS = ["h4_n0.2_s0", "h128_n0.2_s0"]
KILLED = "h128_n0.2_s0"  # the model whose training is interrupted
BROKEN = "h4_n0.2_s0"  # the model whose file is spoilt
HISTORY_COLUMNS = ["epoch", "loss", "train_accuracy"]  # the rest are timings
TRACEBACK = "Traceback (most recent call last)"

pytestmark = pytest.mark.slow


def copy_with_settings(dest: Path) -> Path:
    copy_workflow(dest)
    (dest / "settings.yaml").write_text(yaml.safe_dump(SETTINGS))
    return dest


def snakemake_command(*args: str, cores: int = 2) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--cores", str(cores)] + [
        "--configfile",
        "settings.yaml",
        *args,
    ]


@dataclass
class Run:
    workdir: Path
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def snakemake(workdir: Path, *args: str, cores: int = 2) -> Run:
    done = subprocess.run(
        snakemake_command(*args, cores=cores),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return Run(workdir, done.returncode, done.stdout, done.stderr)


class Started:
    """A Snakemake run in the background, in its own process group (as a command
    typed in a terminal is), printing to files in its folder."""

    def __init__(self, workdir: Path, *args: str, cores: int = 2):
        self.workdir = workdir
        with (
            open(workdir / "run.stdout", "w") as out,
            open(workdir / "run.stderr", "w") as err,
        ):
            self.proc = subprocess.Popen(
                snakemake_command(*args, cores=cores),
                cwd=workdir,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        self.group = self.proc.pid

    def finish(self, timeout: float = 600) -> Run:
        self.proc.wait(timeout=timeout)
        self.wait_for_group()
        return Run(
            self.workdir,
            self.proc.returncode,
            (self.workdir / "run.stdout").read_text(),
            (self.workdir / "run.stderr").read_text(),
        )

    def wait_for_group(self) -> None:
        deadline = time.monotonic() + 30
        while live_members(self.group):
            assert time.monotonic() < deadline, "processes survive the run"
            time.sleep(0.05)

    def stop(self) -> None:
        """Kill what is left of this run (only its own process group)."""
        if self.proc.poll() is None or live_members(self.group):
            os.killpg(self.group, signal.SIGKILL)
            self.proc.wait()


def live_members(group: int) -> list[int]:
    """Running processes of process group ``group`` (zombies excluded); Linux."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended while we looked
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def start_all(runs: list[Started], signals: dict[int, signal.Signals]) -> list[Run]:
    """Wait for ``runs``; send ``signals[i]`` to the whole group of run ``i`` as
    soon as the KILLED model of that run has logged its first epoch."""
    pending = dict(signals)
    try:
        deadline = time.monotonic() + 600
        while pending:
            for i, sig in list(pending.items()):
                log = runs[i].workdir / f"logs/train/{KILLED}.log"
                if log.exists() and " epoch 1/" in log.read_text():
                    os.killpg(runs[i].group, sig)
                    del pending[i]
                else:
                    assert runs[i].proc.poll() is None, "run ended before the kill"
            assert time.monotonic() < deadline, "training never started"
            time.sleep(0.01)
        return [run.finish() for run in runs]
    finally:
        for run in runs:
            run.stop()


def truncated_files(workdir: Path) -> list[str]:
    """What is not whole in results/ and data/: every npz must load (models as
    models, without pickle), JSON parse, tables read and end with a newline, PNGs
    end with their IEND chunk, and no temporary file may be left."""
    problems = []
    for folder in ("results", "data"):
        for path in sorted((workdir / folder).rglob("*")):
            if path.is_dir():
                continue
            try:
                assert not path.name.startswith(".tmp-"), "temporary file left"
                if path.suffix == ".npz":
                    if path.parent.name == "models":
                        MLP.load(path)
                    else:
                        with np.load(path, allow_pickle=False) as data:
                            [data[key] for key in data.files]
                elif path.suffix == ".json":
                    json.loads(path.read_text())
                elif path.suffix in (".csv", ".tsv"):
                    assert path.read_bytes().endswith(b"\n"), "no final newline"
                    pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",")
                elif path.suffix == ".png":
                    assert path.read_bytes().endswith(b"IEND\xaeB`\x82"), "cut PNG"
                elif path.name == "report.md":
                    assert "## Clean eval accuracy" in path.read_text(), "cut report"
            except Exception as exc:
                problems.append(f"{path.relative_to(workdir)}: {exc}")
    return problems


def assert_same_results(workdir: Path, reference: Path) -> None:
    """Byte-identical accuracy table and metrics, identical weights, the same
    learning curves (their timing columns aside)."""
    accuracy = "results/accuracy.csv"
    assert (workdir / accuracy).read_bytes() == (reference / accuracy).read_bytes()
    for name in MODELS:
        with (
            np.load(workdir / f"results/models/{name}.npz", allow_pickle=False) as a,
            np.load(reference / f"results/models/{name}.npz", allow_pickle=False) as b,
        ):
            assert sorted(a.files) == sorted(b.files)
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key])
        history = f"results/models/{name}.history.csv"
        pd.testing.assert_frame_equal(
            pd.read_csv(workdir / history)[HISTORY_COLUMNS],
            pd.read_csv(reference / history)[HISTORY_COLUMNS],
        )
        metrics = f"results/metrics/{name}.json"
        assert (workdir / metrics).read_bytes() == (reference / metrics).read_bytes()


def mtimes(workdir: Path, folder: str) -> dict[str, int]:
    return {
        str(p.relative_to(workdir)): p.stat().st_mtime_ns
        for p in (workdir / folder).rglob("*")
        if p.is_file()
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Run]:
    """Three runs of SETTINGS at once: one uninterrupted, one killed hard and one
    stopped with Ctrl-C while KILLED trains. The interrupted runs use one core,
    so the training job is their only job running at the kill: every other job
    has either finished (and Snakemake has recorded it) or not started."""
    root = tmp_path_factory.mktemp("interruptions")
    started = [
        Started(copy_with_settings(root / "uninterrupted")),
        Started(copy_with_settings(root / "sigkill"), cores=1),
        Started(copy_with_settings(root / "ctrl_c"), cores=1),
    ]
    done = start_all(started, {1: signal.SIGKILL, 2: signal.SIGINT})
    reference, *interrupted = done
    assert reference.returncode == 0, reference.stderr[-4000:]
    assert truncated_files(reference.workdir) == []
    for run in interrupted:
        assert run.returncode != 0
        assert not (run.workdir / f"results/models/{KILLED}.npz").exists(), (
            "training finished before the kill; raise train.epochs in SETTINGS"
        )
    return dict(zip(["reference", "sigkill", "ctrl_c"], done, strict=True))


def test_results_get_the_usual_permissions(runs):
    umask = os.umask(0)
    os.umask(umask)
    for name in ("results/accuracy.csv", f"results/models/{KILLED}.npz"):
        mode = (runs["reference"].workdir / name).stat().st_mode & 0o777
        assert mode == 0o666 & ~umask, f"{name}: {oct(mode)}"


# ------------------------------------------------------------ broken model files


class Unpickled:
    """Creates the folder ``path`` if anything ever unpickles it."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (os.makedirs, (str(self.path),))


def write_garbage(path: Path) -> None:
    path.write_bytes(b"not a model, just some bytes\n" * 20)


def write_truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def write_foreign_npz(path: Path) -> None:
    with open(path, "wb") as handle:
        np.savez(handle, weights=np.ones((784, 4), np.float32), bias=np.zeros(4))


def write_npy(path: Path) -> None:
    with open(path, "wb") as handle:
        np.save(handle, np.ones((784, 4), np.float32))  # one array, not an archive


def write_pickle_npz(path: Path) -> None:
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    marker = path.parents[2] / "unpickled"
    arrays["w1"] = np.array([Unpickled(marker)], dtype=object)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


BREAKERS = {
    "garbage": write_garbage,
    "truncated": write_truncated,
    "foreign": write_foreign_npz,
    "npy": write_npy,
    "pickle": write_pickle_npz,
}
MESSAGES = {  # what follows "error in rule evaluate: results/models/<model>.npz: "
    "garbage": "not a ",
    "truncated": "not a readable model file (File is not a zip file)",
    "foreign": "not a noisy-mnist model (missing w1, b1, w2, b2, metadata)",
    "npy": "not a ",
    "pickle": "not a readable model file (Object arrays cannot be loaded when "
    "allow_pickle=False)",
}
KEPT = [
    "data/processed/eval.npz",
    "data/noisy/train_noise0.2.npz",
    f"results/models/{KILLED}.npz",
    f"results/metrics/{KILLED}.json",
    f"results/attacks/{KILLED}.json",
    "results/report.md",
    "results/accuracy.csv",
]


def spoil_copy(reference: Path, dest: Path, breaker) -> Path:
    """A copy of the finished run with BROKEN's model file spoilt by ``breaker``
    and made newer than everything else."""
    shutil.copytree(reference, dest, symlinks=True)  # keeps the mtimes
    model = dest / f"results/models/{BROKEN}.npz"
    breaker(model)
    newer = max(p.stat().st_mtime for p in (dest / "results").rglob("*"))
    os.utime(model, (newer + 10, newer + 10))
    return dest


# ------------------------------------------------------------ what the user does


@dataclass
class Before:
    """The state of an interrupted run before it is rerun."""

    truncated: list[str]
    data: dict[str, int]
    models: dict[str, int]
    lock_files: list[str]


def before_rerun(workdir: Path) -> Before:
    locks = workdir / ".snakemake/locks"
    return Before(
        truncated=truncated_files(workdir),
        data=mtimes(workdir, "data"),
        models=mtimes(workdir, "results/models"),
        lock_files=sorted(p.name for p in locks.glob("*")) if locks.exists() else [],
    )


@pytest.fixture(scope="module")
def after(runs, tmp_path_factory) -> dict:
    """What the user types next, for every interrupted or spoilt run (at once):

    - after SIGKILL: the same command (refused: locked), ``--unlock``, then -- in
      case the kill came in the instant between the training job's two renames,
      simulated here by a half-written history file -- the same command (refused:
      incomplete), and the same command with ``--rerun-incomplete``;
    - after Ctrl-C: the same command;
    - after a model file was spoilt: the same command with --keep-going (as in
      profiles/local), so that both evaluate and attack get to run.
    """
    reference = runs["reference"].workdir
    result = {"before": {}, "broken": {}}
    background = {}
    try:
        ctrl_c = runs["ctrl_c"].workdir
        result["before"]["ctrl_c"] = before_rerun(ctrl_c)
        background["ctrl_c"] = Started(ctrl_c)
        for name, breaker in BREAKERS.items():
            copy = spoil_copy(reference, tmp_path_factory.mktemp(name) / "run", breaker)
            background[name] = Started(copy, "--keep-going")

        killed = runs["sigkill"].workdir
        result["before"]["sigkill"] = before_rerun(killed)
        result["locked"] = snakemake(killed)
        result["unlock"] = snakemake(killed, "--unlock")
        history = killed / f"results/models/{KILLED}.history.csv"
        history.write_text("epoch,loss,train_accuracy,seconds\n1,0.6")
        result["incomplete"] = snakemake(killed)
        background["sigkill"] = Started(killed, "--rerun-incomplete")

        finished = {name: run.finish() for name, run in background.items()}
    finally:
        for run in background.values():
            run.stop()
    result["rerun"] = {k: finished.pop(k) for k in ("sigkill", "ctrl_c")}
    result["broken"] = finished
    return result


def test_hard_kill_leaves_no_truncated_file(after):
    assert after["before"]["sigkill"].truncated == []


def test_hard_kill_needs_unlock_and_says_so(after):
    # Snakemake had no chance to remove its lock: the same command refuses to
    # start and says what to do
    assert after["before"]["sigkill"].lock_files
    locked = after["locked"]
    assert locked.returncode != 0
    assert "LockException" in locked.output and "--unlock" in locked.output
    assert TRACEBACK not in locked.output
    assert after["unlock"].returncode == 0


def test_output_of_an_unfinished_job_needs_rerun_incomplete_and_says_so(after):
    incomplete = after["incomplete"]
    assert incomplete.returncode != 0
    assert "IncompleteFilesException" in incomplete.output
    assert "--rerun-incomplete" in incomplete.output
    assert f"results/models/{KILLED}.history.csv" in incomplete.output
    assert TRACEBACK not in incomplete.output


@pytest.mark.parametrize("how", ["sigkill", "ctrl_c"])
def test_rerun_after_interruption_finishes_the_work(runs, after, how):
    rerun, before = after["rerun"][how], after["before"][how]
    workdir = rerun.workdir
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    assert truncated_files(workdir) == []
    assert_same_results(workdir, runs["reference"].workdir)
    # the finished work was kept, not redone
    assert mtimes(workdir, "data") == before.data
    for name, mtime in before.models.items():
        assert (workdir / name).stat().st_mtime_ns == mtime, name
    for rule in ("get_data", "split", "noisy_set"):
        assert f"rule {rule}:" not in rerun.output


def test_ctrl_c_stops_cleanly(runs, after):
    assert "Terminating processes on user request" in runs["ctrl_c"].output
    before = after["before"]["ctrl_c"]
    assert before.truncated == []
    assert before.lock_files == [], "Snakemake left its lock behind after Ctrl-C"


def test_ctrl_c_prints_no_python_traceback(runs):
    assert TRACEBACK not in runs["ctrl_c"].output


@pytest.mark.parametrize("how", BREAKERS)
def test_broken_model_file_gets_a_clear_error(runs, after, how):
    result, reference = after["broken"][how], runs["reference"].workdir
    workdir = result.workdir
    assert result.returncode != 0
    for rule in ("evaluate", "attack"):
        line = f"error in rule {rule}: results/models/{BROKEN}.npz: {MESSAGES[how]}"
        assert line in result.stderr, result.stderr[-4000:]
    assert TRACEBACK not in result.output
    assert "unexpected failure" not in result.output
    assert not (workdir / "unpickled").exists(), "the model file was unpickled"
    # nothing computed before is lost; the broken file is left for the user to see
    for path in KEPT:
        assert (workdir / path).read_bytes() == (reference / path).read_bytes(), path
    assert (workdir / f"results/models/{BROKEN}.npz").exists()
    log = (workdir / f"logs/evaluate/{BROKEN}.log").read_text()
    assert MESSAGES[how] in log and "Traceback" not in log


def test_garbage_model_message_does_not_suggest_unpickling(after):
    assert "allow_pickle" not in after["broken"]["garbage"].stderr


MISSING_INTERMEDIATES = (
    "Snakemake does not remake missing intermediate files while the report exists; "
    "rule all needs every model's files as inputs (final_targets in rules/common.smk)"
)


def test_rerun_after_a_failed_evaluate_fails_again(after):
    """Snakemake deleted the failed jobs' outputs; rerunning must not report
    success while the model file is still broken."""
    rerun = snakemake(after["broken"]["garbage"].workdir, "-n")
    assert "Nothing to be done" not in rerun.output
    assert "rule evaluate:" in rerun.output


def test_deleting_the_broken_model_retrains_it(runs, after, tmp_path):
    """The error says "delete it and rerun the pipeline to retrain it": do so."""
    broken = after["broken"]["truncated"]
    assert "delete it and rerun the pipeline to retrain it" in broken.stderr
    workdir = tmp_path / "run"
    shutil.copytree(broken.workdir, workdir, symlinks=True)
    (workdir / f"results/models/{BROKEN}.npz").unlink()
    dry = snakemake(workdir, "-n")
    assert "Nothing to be done" not in dry.output
    rerun = snakemake(workdir)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    assert truncated_files(workdir) == []
    assert_same_results(workdir, runs["reference"].workdir)
