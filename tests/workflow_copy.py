"""Shared by the end-to-end tests: a private copy of the workflow to run Snakemake in,
and reading the job table that a dry run prints."""

import re
import shutil
from pathlib import Path

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


def copy_workflow(dest: Path) -> Path:
    """Copy everything the Snakefile needs into ``dest`` (created if missing)."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in WORKFLOW_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(
                src, dest / part, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy(src, dest / part)
    return dest


def planned_jobs(output: str) -> dict[str, int]:
    """Rule name -> job count from the table a dry run prints."""
    counts = {}
    for line in output.splitlines():
        match = re.fullmatch(r"\s*([a-z_]+)\s+(\d+)\s*", line)
        if match and match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    return counts
