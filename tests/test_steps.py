"""Guards of the evaluate and report steps against files that lie about themselves."""

import json

import pandas as pd
import pytest

from noisy_mnist.mlp import MLP, ModelFileError
from noisy_mnist.report import _load_model_record, verdict_sentences
from noisy_mnist.steps import load_named_model


def test_model_copied_over_another_is_refused(tmp_path):
    MLP(n_hidden=3, n_inputs=4, n_classes=2).save(
        tmp_path / "h8_n0_s0.npz", metadata={"name": "h8_n0.2_s0", "noise": 0.2}
    )
    with pytest.raises(ModelFileError, match=r"h8_n0_s0.npz holds model 'h8_n0.2_s0'"):
        load_named_model(tmp_path / "h8_n0_s0.npz")


def test_model_under_its_own_name_loads(tmp_path):
    MLP(n_hidden=3, n_inputs=4, n_classes=2).save(
        tmp_path / "h3_n0_s0.npz", metadata={"name": "h3_n0_s0", "noise": 0.0}
    )
    _, info = load_named_model(tmp_path / "h3_n0_s0.npz")
    assert info["noise"] == 0.0


def test_damaged_metrics_file_is_named(tmp_path):
    path = tmp_path / "h8_n0_s0.json"
    path.write_text('{"name": "h8_n0_s0", "acc')
    with pytest.raises(ValueError, match="h8_n0_s0.json: not valid JSON"):
        _load_model_record(path, ("accuracy",))
    path.write_text(json.dumps({"name": "h8_n0_s0", "hidden": 8, "noise": 0}))
    with pytest.raises(ValueError, match="h8_n0_s0.json: missing seed, accuracy"):
        _load_model_record(path, ("accuracy",))


def test_metrics_file_of_another_model_is_refused(tmp_path):
    path = tmp_path / "h8_n0_s0.json"
    record = {"name": "h8_n0.2_s0", "hidden": 8, "noise": 0.2, "seed": 0}
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="describes model 'h8_n0.2_s0'"):
        _load_model_record(path, ())


def test_no_baseline_says_so():
    sentences = verdict_sentences(pd.DataFrame(columns=["hidden", "verdict"]), 0.05)
    assert sentences == [
        "No comparison possible: the grid needs noise level 0 (the clean-trained "
        "baseline) and at least one other level in noise.levels."
    ]


def test_history_and_benchmark_files_are_matched_by_model_name():
    from noisy_mnist.report import _paths_by_model

    paths = ["b/h8_n0.2_s0.tsv", "b/h8_n0_s0.tsv"]
    assert _paths_by_model(paths, ".tsv", ["h8_n0_s0", "h8_n0.2_s0"]) == [
        "b/h8_n0_s0.tsv",
        "b/h8_n0.2_s0.tsv",
    ]
    with pytest.raises(ValueError, match=r"no .tsv file for model\(s\) h8_n0_s1"):
        _paths_by_model(paths, ".tsv", ["h8_n0_s1"])
