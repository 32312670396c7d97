import hashlib
import os
import sys
import zipfile
from pathlib import PurePosixPath

# The rule scripts import the `noisy_mnist` package from src/. Setting PYTHONPATH
# here (kept in front of whatever the user had) lets every job find it, also in a
# conda environment or on a cluster node, without installing the package there.
# Nothing is required of the user's environment, so no `envvars:` directive.
SRC = os.path.join(workflow.basedir, "src")
os.environ.update(
    PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
)

from noisy_mnist.datasets import format_level  # noqa: E402


class ConfigError(ValueError):
    pass


def _check_config():
    """Checks the JSON schema cannot express; runs before any job is planned.

    Also tidies numbers the schema accepts but the file names and the rule scripts
    cannot use: a whole float for an integer key (``epochs: 5.0``) becomes an int,
    ``-0.0`` becomes ``0.0``, and NaN or infinity anywhere is refused.
    """
    import math

    import yaml

    with open(os.path.join(workflow.basedir, "schemas", "config.schema.yaml")) as f:
        schema = yaml.safe_load(f)

    def bounds(sub):
        parts = [
            f"{op} {sub[word]}"
            for word, op in (
                ("minimum", ">="),
                ("exclusiveMinimum", ">"),
                ("maximum", "<="),
                ("exclusiveMaximum", "<"),
            )
            if word in sub
        ]
        return f"a finite number {' and '.join(parts)}".rstrip()

    def tidy(value, sub, key):
        if isinstance(value, dict):
            props = sub.get("properties", {})
            for name in value:
                value[name] = tidy(value[name], props.get(name, {}), f"{key}.{name}")
        elif isinstance(value, list):
            items = sub.get("items", {})
            value[:] = [tidy(v, items, f"{key}[{i}]") for i, v in enumerate(value)]
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise ConfigError(f"{key}: {value} is not allowed; use {bounds(sub)}")
            if sub.get("type") == "integer":
                return int(value)  # the schema let it through, so it is whole
            return value + 0.0  # -0.0 -> 0.0, which would name files "n-0"
        return value

    for name in config:
        config[name] = tidy(config[name], schema["properties"].get(name, {}), name)

    data = config["data"]
    if data["source"] == "csv":
        if not data.get("path"):
            raise ConfigError(
                "data.source is csv but data.path is empty: set data.path to your "
                "train.csv, a gzip of it, or the competition's zip"
            )
        raw = os.path.realpath("data/raw") + os.sep
        for key in ("path", "test_path"):
            path = data.get(key)
            if not path:
                continue
            if os.path.realpath(path).startswith(raw):
                raise ConfigError(
                    f"data.{key} {path} lies in data/raw/, which the pipeline "
                    "writes; keep your own file elsewhere, e.g. data/input/"
                )
            if not os.path.exists(path):
                raise ConfigError(
                    f"data.{key}: no such file: {path} (relative paths start in "
                    f"{os.getcwd()})"
                )
            if not os.path.isfile(path):
                raise ConfigError(f"data.{key}: {path} is not a file")
    levels = [format_level(level) for level in config["noise"]["levels"]]
    if len(set(levels)) != len(levels):
        raise ConfigError(f"noise.levels has duplicates: {config['noise']['levels']}")


_check_config()

NOISE_LEVELS = [format_level(level) for level in config["noise"]["levels"]]
HIDDEN_SIZES = config["model"]["hidden_sizes"]
TRAIN_SEEDS = config["train"]["seeds"]
MODEL_NAME = "h{hidden}_n{noise}_s{seed}"


wildcard_constraints:
    hidden=r"\d+",
    seed=r"\d+",
    noise=r"\d+(\.\d+)?",


def has_test_data():
    """Whether the configured source brings unlabelled test digits (test.csv)."""
    data = config["data"]
    if data["source"] == "kaggle":
        return True
    if data["source"] == "csv":
        if data.get("test_path"):
            return True
        path = data["path"]
        if not zipfile.is_zipfile(path):
            return False
        # the reader finds members by base name, also inside a folder of the zip
        with zipfile.ZipFile(path) as archive:
            return any(
                PurePosixPath(name).name == "test.csv" for name in archive.namelist()
            )
    return False


def data_setting(source, key):
    """``data.<key>`` when ``source`` is the configured source, else ""."""
    data = config["data"]
    return data.get(key, "") if data["source"] == source else ""


def noise_setting(key):
    """A noise setting for the noisy_set params; 0 at noise level 0, which uses none."""
    return lambda wc: config["noise"][key] if float(wc.noise) > 0 else 0


def user_data_fingerprint():
    """SHA-256 of the user's input files, as a parameter of get_data: a replaced
    file reruns the pipeline even when the copy kept an older modification time."""
    digest = hashlib.sha256()
    for path in user_data_files():
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def user_data_files():
    """The user's own CSV or zip files that the data come from (source csv)."""
    data = config["data"]
    if data["source"] != "csv":
        return []
    return [data["path"]] + ([data["test_path"]] if data.get("test_path") else [])


def all_models(pattern):
    return expand(pattern, hidden=HIDDEN_SIZES, noise=NOISE_LEVELS, seed=TRAIN_SEEDS)


def final_targets():
    # every model's own files as well: Snakemake does not remake a missing
    # intermediate file while the report exists, so a deleted model, or the
    # outputs Snakemake removed after a failed job, would stay missing behind
    # "Nothing to be done"
    return [
        "results/report.md",
        *all_models(f"results/models/{MODEL_NAME}.npz"),
        *all_models(f"results/models/{MODEL_NAME}.history.csv"),
        *all_models(f"results/metrics/{MODEL_NAME}.json"),
        *all_models(f"results/attacks/{MODEL_NAME}.json"),
    ]


def report_figure(name, caption, category):
    """A figure under results/figures/, registered for `snakemake --report`."""
    return report(
        f"results/figures/{name}",
        caption=f"../report/{caption}",
        category=category,
    )


def report_table(name, description):
    """A CSV table under results/, registered for `snakemake --report`."""
    return report(
        f"results/{name}",
        caption="../report/table.rst",
        category="Tables",
        labels={"table": name, "content": description},
    )
