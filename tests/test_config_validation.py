"""Bad settings are refused when the Snakefile loads, before any job is planned.

Every case is a dry run (``snakemake -n``) of the real Snakefile in its own temporary
copy: the JSON schema (schemas/config.schema.yaml) and ``_check_config()`` in
rules/common.smk run while the Snakefile loads, so a dry run sees exactly what a
real run would. One module fixture runs every case (see FORKER: Snakemake is
imported once and each case runs in a forked child, several at a time); the tests
then only read the outputs. One case is a real run of the `snakemake` command.

A refused config must exit non-zero, name the offending key and what is allowed,
and show Snakemake's short error, never a Python traceback.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from workflow_copy import REPO, copy_workflow, planned_jobs

# a small grid, so that the plans of the accepted configs are easy to count
SMALL = {
    "noise": {"levels": [0, 0.2]},
    "model": {"hidden_sizes": [4]},
    "train": {"seeds": [0], "epochs": 1},
    "evaluation": {"noise_levels": [0], "epsilons": [0]},
}


@dataclass
class Case:
    """One config to try: ``changes`` go to case.yaml (or ``text`` verbatim)."""

    changes: dict | None = None
    text: str | None = None  # raw YAML, for spellings safe_dump would normalise
    args: tuple[str, ...] = ()  # instead of --configfile case.yaml
    setup: Callable[[Path], None] | None = None
    dry_run: bool = True
    # for refused configs: the key as a dotted path, and what the message must say
    key: str | None = None
    says: list[str] = field(default_factory=list)


def make_file(relative: str) -> Callable[[Path], None]:
    def setup(workdir: Path) -> None:
        path = workdir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("label,pixel0\n")

    return setup


def make_folder(relative: str) -> Callable[[Path], None]:
    return lambda workdir: (workdir / relative).mkdir(parents=True)


ALLOWED_TRAIN_KEYS = "['seeds', 'epochs', 'batch_size', 'learning_rate', 'optimizer',"

REFUSED = {
    "unknown top-level key": Case(
        {"nosie": {"levels": [0]}},
        key="nosie",
        says=["is not one of ['data', 'split', 'noise', 'model', 'train'"],
    ),
    "unknown nested key (train.epoch typo)": Case(
        {"train": {"epoch": 5}}, key="train.epoch", says=[ALLOWED_TRAIN_KEYS]
    ),
    "unknown nested key (data.pth typo)": Case(
        {"data": {"pth": "x.csv"}},
        key="data.pth",
        says=["['source', 'path', 'test_path', 'competition']"],
    ),
    "string epochs": Case(
        {"train": {"epochs": "5"}},
        key="train.epochs",
        says=["'5' is not of type 'integer'"],
    ),
    "fractional epochs": Case(
        {"train": {"epochs": 2.5}},
        key="train.epochs",
        says=["2.5 is not of type 'integer'"],
    ),
    "negative noise level": Case(
        {"noise": {"levels": [0, -0.1]}},
        key="noise.levels[1]",
        says=["-0.1 is less than the minimum of 0"],
    ),
    "non-numeric noise level": Case(
        {"noise": {"levels": [0, "abc"]}},
        key="noise.levels[1]",
        says=["'abc' is not of type 'number'"],
    ),
    "noise level as a quoted number": Case(
        {"noise": {"levels": [0, "0.5"]}},
        key="noise.levels[1]",
        says=["'0.5' is not of type 'number'"],
    ),
    "duplicate noise levels 0.1 and 0.10": Case(
        # YAML reads both as the float 0.1, so the message shows [0.1, 0.1]
        text="noise:\n  levels: [0.1, 0.10]\n",
        key="noise.levels",
        says=["[0.1, 0.1] has non-unique elements"],
    ),
    "duplicate noise levels 0 and 0.0": Case(
        text="noise:\n  levels: [0, 0.0]\n",
        key="noise.levels",
        says=["[0, 0.0] has non-unique elements"],
    ),
    "empty noise grid": Case(
        {"noise": {"levels": []}},
        key="noise.levels",
        says=["[] should be non-empty"],
    ),
    "NaN noise level": Case(
        text="noise:\n  levels: [0, .nan]\n",
        key="noise.levels[1]",
        says=["nan is not allowed; use a finite number >= 0"],
    ),
    "infinite noise level": Case(
        text="noise:\n  levels: [0, .inf]\n",
        key="noise.levels[1]",
        says=["inf is greater than the maximum of 100"],
    ),
    "huge noise level": Case(
        {"noise": {"levels": [0, 1e20]}},
        key="noise.levels[1]",
        says=["1e+20 is greater than the maximum of 100"],
    ),
    "empty test-noise grid": Case(
        {"evaluation": {"noise_levels": []}},
        key="evaluation.noise_levels",
        says=["[] should be non-empty"],
    ),
    "hidden size 0": Case(
        {"model": {"hidden_sizes": [4, 0]}},
        key="model.hidden_sizes[1]",
        says=["0 is less than the minimum of 1"],
    ),
    "duplicate hidden sizes": Case(
        {"model": {"hidden_sizes": [4, 4]}},
        key="model.hidden_sizes",
        says=["has non-unique elements"],
    ),
    "negative seed": Case(
        {"train": {"seeds": [0, -1]}},
        key="train.seeds[1]",
        says=["-1 is less than the minimum of 0"],
    ),
    "eval_fraction 0": Case(
        {"split": {"eval_fraction": 0}},
        key="split.eval_fraction",
        says=["0 is less than or equal to the minimum of 0"],
    ),
    "eval_fraction 1": Case(
        {"split": {"eval_fraction": 1}},
        key="split.eval_fraction",
        says=["1 is greater than or equal to the maximum of 1"],
    ),
    "eval_fraction 1.5": Case(
        {"split": {"eval_fraction": 1.5}},
        key="split.eval_fraction",
        says=["1.5 is greater than or equal to the maximum of 1"],
    ),
    "epochs 0": Case(
        {"train": {"epochs": 0}},
        key="train.epochs",
        says=["0 is less than the minimum of 1"],
    ),
    "batch_size 0": Case(
        {"train": {"batch_size": 0}},
        key="train.batch_size",
        says=["0 is less than the minimum of 1"],
    ),
    "infinite learning rate": Case(
        text="train:\n  learning_rate: .inf\n",
        key="train.learning_rate",
        says=["inf is not allowed; use a finite number > 0"],
    ),
    "unknown optimizer": Case(
        {"train": {"optimizer": "rmsprop"}},
        key="train.optimizer",
        says=["'rmsprop' is not one of ['adam', 'sgd']"],
    ),
    "unknown data.source": Case(
        {"data": {"source": "mnist"}},
        key="data.source",
        says=["'mnist' is not one of ['sample', 'csv', 'kaggle']"],
    ),
    "unknown noise.mode": Case(
        {"noise": {"mode": "add"}},
        key="noise.mode",
        says=["'add' is not one of ['replace', 'augment']"],
    ),
    "epsilon above 1": Case(
        {"evaluation": {"epsilons": [0, 1.5]}},
        key="evaluation.epsilons[1]",
        says=["1.5 is greater than the maximum of 1"],
    ),
    "NaN epsilon": Case(
        text="evaluation:\n  epsilons: [0, .nan]\n",
        key="evaluation.epsilons[1]",
        says=["nan is not allowed; use a finite number >= 0 and <= 1"],
    ),
    "source csv without a path": Case(
        {"data": {"source": "csv"}},
        key="data.path",
        says=["data.source is csv but data.path is empty"],
    ),
    "source csv, missing file": Case(
        {"data": {"source": "csv", "path": "input/train.csv"}},
        key="data.path",
        says=["no such file: input/train.csv"],
    ),
    "source csv, path is a folder": Case(
        {"data": {"source": "csv", "path": "input"}},
        setup=make_folder("input"),
        key="data.path",
        says=["input is not a file"],
    ),
    "source csv, path inside data/raw": Case(
        {"data": {"source": "csv", "path": "data/raw/train.csv"}},
        setup=make_file("data/raw/train.csv"),
        key="data.path",
        says=["lies in data/raw/, which the pipeline writes"],
    ),
    "source csv, path inside data/raw, not there yet": Case(
        {"data": {"source": "csv", "path": "data/raw/mine.csv"}},
        key="data.path",
        says=["lies in data/raw/, which the pipeline writes"],
    ),
    "source csv, test_path inside data/raw": Case(
        {
            "data": {
                "source": "csv",
                "path": "input/train.csv",
                "test_path": "data/raw/test.csv",
            }
        },
        setup=make_file("input/train.csv"),
        key="data.test_path",
        says=["lies in data/raw/, which the pipeline writes"],
    ),
    "source csv, missing test_path": Case(
        {
            "data": {
                "source": "csv",
                "path": "input/train.csv",
                "test_path": "input/test.csv",
            }
        },
        setup=make_file("input/train.csv"),
        key="data.test_path",
        says=["no such file: input/test.csv"],
    ),
    "typo given with --config": Case(
        args=("--config", "train={epoch: 5}"),
        key="train.epoch",
        says=[ALLOWED_TRAIN_KEYS],
    ),
    "bad value in a second --configfile": Case(
        args=("--configfile", "config.yaml", "case.yaml"),
        changes={"train": {"batch_size": 0}},
        key="train.batch_size",
        says=["0 is less than the minimum of 1"],
    ),
    # not a dry run: nothing may be created either
    "real run with a bad config": Case(
        {"noise": {"levels": [0, -1]}},
        dry_run=False,
        key="noise.levels[1]",
        says=["-1 is less than the minimum of 0"],
    ),
}

ACCEPTED = {
    "shipped config.yaml": Case(args=()),
    "small config": Case(SMALL),
    "--config replaces the noise levels": Case(
        args=("--configfile", "small.yaml", "--config", "noise={levels: [0, 0.5]}")
    ),
    "--config replaces the test-noise levels": Case(
        args=(
            "--configfile",
            "small.yaml",
            "--config",
            "evaluation={noise_levels: [0, 0.3, 0.7]}",
        )
    ),
    "second --configfile": Case(
        {"noise": {"levels": [0, 0.5, 0.7]}},
        args=("--configfile", "config.yaml", "small.yaml", "case.yaml"),
    ),
    "negative zero noise level": Case(
        dict(SMALL, noise={"levels": [-0.0, 0.2]}),
    ),
    "whole floats for integer keys": Case(
        dict(
            SMALL,
            model={"hidden_sizes": [4.0]},
            train={"seeds": [0.0], "epochs": 2.0, "batch_size": 32.0},
        )
    ),
}


# Runs many Snakemake command lines cheaply: imports Snakemake once, then forks one
# child per command line, which changes into its folder, sends stdout and stderr to
# a file and calls snakemake.cli.main -- the function the `snakemake` command runs.
# Importing Snakemake is most of the second a run costs, so this is ~5x faster.
FORKER = """
import json, os, sys
import jsonschema, snakemake.api, snakemake.cli, snakemake.dag, snakemake.workflow

def child(workdir, argv, out):
    os.chdir(workdir)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:
        snakemake.cli.main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        code = 99
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

jobs, running, codes = json.load(sys.stdin), {}, {}
for index, job in enumerate(jobs):
    if len(running) >= max(2, os.cpu_count() or 2):
        pid, status = os.wait()
        codes[running.pop(pid)] = os.waitstatus_to_exitcode(status)
    pid = os.fork()
    if pid == 0:
        child(**job)
    running[pid] = index
while running:
    pid, status = os.wait()
    codes[running.pop(pid)] = os.waitstatus_to_exitcode(status)
print(json.dumps([codes[i] for i in range(len(jobs))]))
"""


@dataclass
class Outcome:
    workdir: Path
    returncode: int
    output: str


def prepare(name: str, case: Case, root: Path) -> tuple[Path, list[str]]:
    """The case's own copy of the workflow, and its snakemake arguments."""
    workdir = copy_workflow(root / re.sub(r"\W+", "_", name))
    (workdir / "small.yaml").write_text(yaml.safe_dump(SMALL))
    if case.text is not None:
        (workdir / "case.yaml").write_text(case.text)
    elif case.changes is not None:
        (workdir / "case.yaml").write_text(yaml.safe_dump(case.changes))
    if case.setup:
        case.setup(workdir)
    if case.args:
        args = list(case.args)
    elif case.changes is not None or case.text is not None:
        args = ["--configfile", "case.yaml"]
    else:
        args = []
    return workdir, ["--cores", "1", *args] + (["-n"] if case.dry_run else [])


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, Outcome]:
    root = tmp_path_factory.mktemp("configs")
    cases = {**REFUSED, **ACCEPTED}
    prepared = {name: prepare(name, case, root) for name, case in cases.items()}
    results = {}
    # real runs through the `snakemake` command itself, as a user would type it
    for name in [n for n, case in cases.items() if not case.dry_run]:
        workdir, argv = prepared.pop(name)
        done = subprocess.run(
            [sys.executable, "-m", "snakemake", *argv],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=300,
        )
        results[name] = Outcome(workdir, done.returncode, done.stdout + done.stderr)
    names = list(prepared)
    jobs = [
        {"workdir": str(w), "argv": argv, "out": str(w / "snakemake.out")}
        for w, argv in prepared.values()
    ]
    forker = subprocess.run(
        [sys.executable, "-c", FORKER],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert forker.returncode == 0, forker.stderr
    codes = json.loads(forker.stdout.splitlines()[-1])
    for name, code in zip(names, codes, strict=True):
        workdir = prepared[name][0]
        output = (workdir / "snakemake.out").read_text()
        results[name] = Outcome(workdir, code, output)
    return results


def names_key(output: str, key: str) -> bool:
    """Whether ``output`` names ``key`` ("noise.levels[1]"), in either spelling:
    dotted as here, or as jsonschema's path ("['noise']['levels'][1]"). An unknown
    key is shown as the value found under its parent: "On instance['train']:
    'epoch'", or "config train: 'epoch' is not one of ..." in the one-line form."""
    parts = re.findall(r"[^.\[\]]+|\[\d+\]", key)
    bracketed = "".join(p if p.startswith("[") else f"['{p}']" for p in parts)
    if key in output or bracketed in output:
        return True
    *parent, last = parts
    parent_path = re.escape("".join(f"['{p}']" for p in parent))
    parent_key = re.escape(".".join(parent) or "(top level)")
    unknown = rf"(On instance{parent_path}:\s*|config {parent_key}: )'{last}'"
    return re.search(unknown, output) is not None


@pytest.mark.parametrize("name", REFUSED)
def test_bad_config_is_refused_naming_the_key(outcomes, name):
    case, result = REFUSED[name], outcomes[name]
    output = result.output
    assert result.returncode != 0, output
    assert names_key(output, case.key), f"{case.key!r} not named:\n{output}"
    for text in case.says:
        assert text in output, output
    assert "Traceback (most recent call last)" not in output, output
    # refused while the Snakefile loads: no plan, no job
    assert "Building DAG of jobs" not in output, output
    assert "Job stats" not in output and "localrule" not in output, output
    for folder in ("results", "logs", "data/processed"):
        assert not (result.workdir / folder).exists(), folder


@pytest.mark.parametrize(
    "name",
    [name for name in ACCEPTED if not name.startswith("--config replaces")],
)
def test_good_config_is_accepted(outcomes, name):
    result = outcomes[name]
    assert result.returncode == 0, result.output
    assert "Traceback" not in result.output


def test_second_configfile_overrides_the_first(outcomes):
    output = outcomes["second --configfile"].output
    jobs = planned_jobs(output)
    assert jobs["noisy_set"] == 3 and jobs["train"] == 3  # 3 levels x 1 x 1
    for level in ("0", "0.5", "0.7"):
        assert f"data/noisy/train_noise{level}.npz" in output
    assert "train_noise0.2.npz" not in output  # small.yaml's levels are replaced


@pytest.mark.parametrize(
    "name, level_files",
    [
        ("--config replaces the noise levels", ["train_noise0.npz", "0.5.npz"]),
        ("--config replaces the test-noise levels", []),
    ],
)
def test_config_option_replaces_nested_lists(outcomes, name, level_files):
    output = outcomes[name].output
    assert outcomes[name].returncode == 0, output
    jobs = planned_jobs(output)
    if level_files:
        assert jobs["noisy_set"] == 2 and jobs["train"] == 2  # [0, 0.2] replaced
        assert "train_noise0.2.npz" not in output
        for suffix in level_files:
            assert suffix in output


def test_negative_zero_level_is_read_as_zero(outcomes):
    output = outcomes["negative zero noise level"].output
    assert "data/noisy/train_noise0.npz" in output
    assert "noise-0" not in output and "n-0_" not in output


def test_whole_floats_count_as_integers(outcomes):
    output = outcomes["whole floats for integer keys"].output
    assert "results/models/h4_n0.2_s0.npz" in output
    assert "h4.0" not in output and "_s0.0" not in output


def test_shipped_config_plans_the_full_grid(outcomes):
    jobs = planned_jobs(outcomes["shipped config.yaml"].output)
    assert jobs["train"] == 4 * 2 * 3  # levels x hidden sizes x seeds
    assert jobs["noisy_set"] == 4


def test_allowed_keys_match_the_schema_properties():
    """Unknown keys are refused with `propertyNames: {enum: [...]}` (the message
    then lists the allowed keys); each enum must list exactly the object's
    properties, or a documented key would be refused or a typo let through."""
    schema = yaml.safe_load((REPO / "schemas/config.schema.yaml").read_text())
    objects = [("(top level)", schema)] + [
        (name, sub)
        for name, sub in schema["properties"].items()
        if sub.get("type") == "object"
    ]
    assert len(objects) == 7
    for name, sub in objects:
        assert sub["propertyNames"]["enum"] == list(sub["properties"]), name
        assert "additionalProperties" not in sub, name


def test_every_key_of_config_yaml_is_in_the_schema():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    schema = yaml.safe_load((REPO / "schemas/config.schema.yaml").read_text())
    # config.yaml documents every setting, so both name the same keys
    assert set(config) == set(schema["properties"])
    for section, values in config.items():
        assert set(values) == set(schema["properties"][section]["properties"])
