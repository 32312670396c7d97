import os
import sys
import zipfile

# The rule scripts import the `noisy_mnist` package from src/. Setting PYTHONPATH
# here (kept in front of whatever the user had) lets every job find it, also in a
# conda environment or on a cluster node, without installing the package there.
# Nothing is required of the user's environment, so no `envvars:` directive.
SRC = os.path.join(workflow.basedir, "src")
os.environ.update(
    PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
)
sys.path.insert(0, SRC)

from noisy_mnist.datasets import format_level  # noqa: E402


class ConfigError(ValueError):
    pass


def _check_config():
    data = config["data"]
    if data["source"] == "csv":
        if not data.get("path"):
            raise ConfigError(
                "data.source is csv but data.path is empty: set data.path to your "
                "train.csv, a gzip of it, or the competition's zip"
            )
        if not os.path.exists(data["path"]):
            raise ConfigError(f"data.path: no such file: {data['path']}")
        if os.path.abspath(data["path"]).startswith(
            os.path.abspath("data/raw") + os.sep
        ):
            raise ConfigError(
                f"data.path {data['path']} lies in data/raw/, which the pipeline "
                "writes; keep your own file elsewhere, e.g. data/input/"
            )
        if data.get("test_path") and not os.path.exists(data["test_path"]):
            raise ConfigError(f"data.test_path: no such file: {data['test_path']}")
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
        return (
            zipfile.is_zipfile(path) and "test.csv" in zipfile.ZipFile(path).namelist()
        )
    return False


def user_data_files():
    """The user's own CSV or zip files that the data come from (source csv)."""
    data = config["data"]
    if data["source"] != "csv":
        return []
    return [data["path"]] + ([data["test_path"]] if data.get("test_path") else [])


def all_models(pattern):
    return expand(pattern, hidden=HIDDEN_SIZES, noise=NOISE_LEVELS, seed=TRAIN_SEEDS)


def final_targets():
    return ["results/report.md"]


def report_figure(name, caption, category):
    """A figure under results/figures/, registered for `snakemake --report`."""
    return report(
        f"results/figures/{name}",
        caption=f"../report/{caption}",
        category=category,
    )
