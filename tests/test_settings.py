"""Turning --config strings into numbers, guided by the schema."""

from pathlib import Path

import yaml

from noisy_mnist.settings import numbers_where_schema_expects

SCHEMA = yaml.safe_load(
    (Path(__file__).resolve().parents[1] / "schemas/config.schema.yaml").read_text()
)


def test_numbers_become_numbers_where_the_schema_expects_them():
    given = {
        "noise": {"levels": ["0", "0.5", "1e-1"], "base_std": "0.2"},
        "train": {"epochs": "5", "seeds": ["0", "3"]},
    }
    assert numbers_where_schema_expects(given, SCHEMA) == {
        "noise": {"levels": [0.0, 0.5, 0.1], "base_std": 0.2},
        "train": {"epochs": 5, "seeds": [0, 3]},
    }


def test_strings_stay_strings_elsewhere_and_non_numbers_are_left_for_the_schema():
    given = {
        "data": {"source": "csv", "path": "2024", "competition": "123"},
        "train": {"epochs": "five", "batch_size": "2.5"},
    }
    result = numbers_where_schema_expects(given, SCHEMA)
    assert result["data"] == given["data"]
    assert result["train"]["epochs"] == "five"  # refused later by the schema
    assert result["train"]["batch_size"] == 2.5  # not an integer: refused later
