"""Collect the per-model files into tables, figures and ``results/report.md``."""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from tabulate import tabulate

from noisy_mnist import figures
from noisy_mnist.datasets import format_level, load_dataset
from noisy_mnist.files import write_bytes_atomic
from noisy_mnist.stats import holm, mcnemar_exact, mean_ci

TIMING_COLUMNS = [
    "hidden",
    "noise",
    "seed",
    "train_seconds",
    "job_seconds",
    "seconds_per_epoch",
    "samples_per_second",
    "max_rss_mb",
    "cpu_seconds",
]
FIGURES = {
    "accuracy": "accuracy_vs_noise.png",
    "robustness": "robustness_heatmap.png",
    "adversarial": "adversarial.png",
    "learning": "learning_curves.png",
    "confusion": "confusion_best.png",
}


# ---------------------------------------------------------------------- reading


def _load_json(path, required=()) -> dict:
    """A JSON record, with an error naming the file if it is damaged or incomplete."""
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path}: not valid JSON ({exc}); delete it and rerun"
        ) from None
    missing = [key for key in required if key not in record]
    if missing:
        raise ValueError(
            f"{path}: missing {', '.join(missing)}; delete it and rerun to remake it"
        )
    return record


def _load_model_record(path, required) -> dict:
    """A per-model JSON file, checked to describe the model its file name says."""
    record = _load_json(path, ("name", "hidden", "noise", "seed", *required))
    if record["name"] != Path(path).stem:
        raise ValueError(
            f"{path} describes model {record['name']!r}, not {Path(path).stem!r}; "
            "delete it and rerun to remake it"
        )
    return record


def _model_key(record: dict) -> tuple[int, float, int]:
    return int(record["hidden"]), float(record["noise"]), int(record["seed"])


def read_benchmark(path) -> dict:
    """The data row of a Snakemake ``benchmark:`` file as floats (NaN if absent),
    plus ``end``, the file's modification time, which is when the job finished."""
    frame = pd.read_csv(path, sep="\t")
    row = {
        col: pd.to_numeric(frame[col], errors="coerce").iloc[-1]
        for col in frame.columns
        if col != "h:m:s"
    }
    row["end"] = os.path.getmtime(path)
    return row


def _paths_by_model(paths, suffix: str, names: list[str]) -> list[str]:
    """The path named ``<name><suffix>`` for each model name, in ``names`` order."""
    by_name = {Path(p).name.removesuffix(suffix): p for p in paths}
    missing = [name for name in names if name not in by_name]
    if missing:
        raise ValueError(f"no {suffix} file for model(s) {', '.join(missing)}")
    return [by_name[name] for name in names]


class Results:
    """Every per-model file of one run, as tidy tables sorted by hidden, noise, seed.

    ``metrics``, ``attacks``, ``histories`` and ``benchmarks`` are parallel lists of
    paths in any order (Snakemake's ``expand`` order); each file names its model.
    """

    def __init__(self, metrics, attacks, histories, benchmarks):
        records = [
            _load_model_record(
                p,
                (
                    "accuracy",
                    "n_samples",
                    "correct",
                    "noisy_accuracy",
                    "confusion_matrix",
                ),
            )
            for p in metrics
        ]
        self.records = sorted(records, key=_model_key)
        self.attack_records = sorted(
            (_load_model_record(p, ("fgsm", "pgd")) for p in attacks), key=_model_key
        )
        # match each model's history and benchmark by file name, not list position
        names = [r["name"] for r in self.records]
        self.history_paths = _paths_by_model(histories, ".history.csv", names)
        self.benchmark_paths = _paths_by_model(benchmarks, ".tsv", names)

        self.accuracy = pd.DataFrame(
            [(*_model_key(r), r["accuracy"]) for r in self.records],
            columns=["hidden", "noise", "seed", "accuracy"],
        )
        self.robustness = pd.DataFrame(
            [
                (*_model_key(r), float(level), acc)
                for r in self.records
                for level, acc in r["noisy_accuracy"].items()
            ],
            columns=["hidden", "noise", "seed", "test_noise", "accuracy"],
        )
        self.adversarial = pd.DataFrame(
            [
                (*_model_key(r), attack, float(eps), acc)
                for r in self.attack_records
                for attack in ("fgsm", "pgd")
                for eps, acc in r[attack].items()
            ],
            columns=["hidden", "noise", "seed", "attack", "epsilon", "accuracy"],
        )
        history_frames = []
        for record, path in zip(self.records, self.history_paths, strict=True):
            frame = pd.read_csv(path)
            hidden, noise, seed = _model_key(record)
            history_frames.append(frame.assign(hidden=hidden, noise=noise, seed=seed))
        self.histories = pd.concat(history_frames, ignore_index=True)
        self.timing = self._timing()

    @property
    def n_eval(self) -> int:
        return int(self.records[0]["n_samples"])

    def _timing(self) -> pd.DataFrame:
        rows = []
        for record, bench_path in zip(self.records, self.benchmark_paths, strict=True):
            key = _model_key(record)
            history = self.histories[
                (self.histories["hidden"] == key[0])
                & (self.histories["noise"] == key[1])
                & (self.histories["seed"] == key[2])
            ]
            bench = read_benchmark(bench_path)
            rows.append(
                (
                    *key,
                    float(history["seconds"].sum()),
                    float(bench["s"]),
                    float(history["seconds"].mean()),
                    float(history["samples_per_second"].median()),
                    float(bench.get("max_rss", np.nan)),
                    float(bench.get("cpu_time", np.nan)),
                )
            )
        return pd.DataFrame(rows, columns=TIMING_COLUMNS)

    def best_variant(self) -> tuple[int, float]:
        """(hidden, noise) with the highest mean clean eval accuracy over seeds;
        ties go to the smaller model, then the lower noise."""
        means = self.accuracy.groupby(["hidden", "noise"])["accuracy"].mean()
        best = means.max()
        return min(k for k, v in means.items() if v == best)


# ---------------------------------------------------------------------- statistics


def format_interval(values, confidence: float) -> str:
    """``mean ± std [low, high]`` in percent, three decimals, for fractions."""
    mean, std, low, high = mean_ci(values, confidence)
    if math.isnan(std):
        return f"{100 * mean:.3f}"
    return f"{100 * mean:.3f} ± {100 * std:.3f} [{100 * low:.3f}, {100 * high:.3f}]"


def grid_table(
    frame: pd.DataFrame,
    row: str,
    column: str,
    confidence: float,
    row_label: str,
    column_label: str,
) -> str:
    """Markdown table of ``frame.accuracy`` cells: one row per value of ``row``,
    one column per value of ``column``, each cell mean ± std [CI] over seeds."""
    columns = sorted(frame[column].unique())
    rows = []
    for row_value, part in frame.groupby(row, sort=True):
        cells = [format_level(row_value) if row != "hidden" else str(row_value)]
        for col_value in columns:
            values = part.loc[part[column] == col_value, "accuracy"]
            cells.append(format_interval(values, confidence) if len(values) else "")
        rows.append(cells)
    headers = [row_label] + [column_label.format(format_level(c)) for c in columns]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def paired_tests(results: Results, alpha: float, confidence: float) -> pd.DataFrame:
    """McNemar's exact test of each noise level against noise 0, per hidden size.

    For every seed that both variants share, the two models' right/wrong answers
    on the same eval images are paired; the discordant counts of all seeds are
    summed (pooled over seeds) and tested. p-values are Holm-corrected across all
    the tests of the report (every hidden size and level). The verdict is "helped"
    or "hurt" only when the corrected p-value is below ``alpha`` and the accuracy
    difference has the same sign for every seed pair; otherwise "no detectable
    difference". The t interval of the per-seed differences is given beside it.
    """
    correct = {
        _model_key(r): np.frombuffer(r["correct"].encode(), np.uint8) == 49
        for r in results.records
    }
    rows = []
    for hidden in sorted(results.accuracy["hidden"].unique()):
        levels = sorted({k[1] for k in correct if k[0] == hidden and k[1] != 0})
        base_seeds = {k[2] for k in correct if k[0] == hidden and k[1] == 0}
        if not base_seeds:
            continue
        for level in levels:
            seeds = sorted(
                base_seeds & {k[2] for k in correct if k[0] == hidden and k[1] == level}
            )
            only_noisy = sum(
                int((correct[hidden, level, s] & ~correct[hidden, 0.0, s]).sum())
                for s in seeds
            )
            only_clean = sum(
                int((correct[hidden, 0.0, s] & ~correct[hidden, level, s]).sum())
                for s in seeds
            )
            diffs = [
                correct[hidden, level, s].mean() - correct[hidden, 0.0, s].mean()
                for s in seeds
            ]
            same_sign = max(sum(d > 0 for d in diffs), sum(d < 0 for d in diffs))
            _, _, low, high = mean_ci([100 * d for d in diffs], confidence)
            rows.append(
                {
                    "hidden": hidden,
                    "noise": level,
                    "seeds": len(seeds),
                    "seeds_agreeing": same_sign,
                    "difference_points": 100 * float(np.mean(diffs)),
                    "difference_ci_low": low,
                    "difference_ci_high": high,
                    "only_noisy_right": only_noisy,
                    "only_clean_right": only_clean,
                    "p_value": mcnemar_exact(only_noisy, only_clean),
                }
            )
    for entry, adjusted in zip(rows, holm([e["p_value"] for e in rows]), strict=True):
        entry["p_holm"] = adjusted
        # the pooled test sees the images, not the seed-to-seed spread of the
        # models; a claim also needs every seed pair to point the same way
        if adjusted >= alpha or entry["seeds_agreeing"] < entry["seeds"]:
            entry["verdict"] = "no detectable difference"
        else:
            entry["verdict"] = "helped" if entry["difference_points"] > 0 else "hurt"
    return pd.DataFrame(
        rows,
        columns=[
            "hidden",
            "noise",
            "seeds",
            "seeds_agreeing",
            "difference_points",
            "difference_ci_low",
            "difference_ci_high",
            "only_noisy_right",
            "only_clean_right",
            "p_value",
            "p_holm",
            "verdict",
        ],
    )


def _interval(low: float, high: float) -> str:
    if math.isnan(low):
        return "n/a"
    return f"[{low:+.3f}, {high:+.3f}]"


def verdict_sentences(tests: pd.DataFrame, alpha: float) -> list[str]:
    """One plain sentence per hidden size saying what training noise did."""
    if tests.empty:
        return [
            "No comparison possible: the grid needs noise level 0 (the clean-trained "
            "baseline) and at least one other level in noise.levels."
        ]
    sentences = []
    for hidden, part in tests.groupby("hidden", sort=True):
        verdicts = set(part["verdict"])
        details = "; ".join(
            f"noise {format_level(r.noise)}: {r.difference_points:+.3f} points, "
            f"p = {r.p_holm:.3g}"
            for r in part.itertuples()
        )
        if verdicts == {"no detectable difference"}:
            summary = "training noise made no detectable difference"
        elif verdicts == {"helped"}:
            summary = "training noise helped at every level tried"
        elif verdicts == {"hurt"}:
            summary = "training noise hurt at every level tried"
        else:
            phrases = {
                "helped": "helped",
                "hurt": "hurt",
                "no detectable difference": "made no detectable difference",
            }
            by_kind: dict[str, list[str]] = {}
            for r in part.itertuples():
                by_kind.setdefault(r.verdict, []).append(format_level(r.noise))
            summary = "training noise " + " and ".join(
                f"{phrases[kind]} at {', '.join(levels)}"
                for kind, levels in by_kind.items()
            )
        sentences.append(
            f"**{hidden} hidden:** {summary} on the clean eval accuracy "
            f"(McNemar, Holm-corrected, alpha {alpha:g}; {details})."
        )
    return sentences


def run_span(benchmarks) -> tuple[float, float]:
    """Sum of the jobs' seconds and the wall-clock span from the first job's start
    to the last job's end, both from Snakemake's benchmark files."""
    records = [read_benchmark(p) for p in benchmarks]
    total = float(sum(r["s"] for r in records))
    start = min(r["end"] - r["s"] for r in records)
    end = max(r["end"] for r in records)
    return total, float(end - start)


def timing_summary(timing: pd.DataFrame) -> str:
    """Markdown: per variant, the means over seeds of the timing columns."""
    rows = []
    for (hidden, noise), group in timing.groupby(["hidden", "noise"], sort=True):
        rows.append(
            [
                hidden,
                format_level(noise),
                len(group),
                f"{group['train_seconds'].mean():.2f}",
                f"{group['job_seconds'].mean():.2f}",
                f"{group['seconds_per_epoch'].mean():.3f}",
                f"{group['samples_per_second'].mean():,.0f}",
                f"{group['max_rss_mb'].max():.0f}",
            ]
        )
    headers = [
        "hidden",
        "noise",
        "seeds",
        "train s (mean)",
        "job s (mean)",
        "s / epoch",
        "samples / s",
        "peak RSS MB (max)",
    ]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


# ---------------------------------------------------------------------- writing


def frame_to_csv(frame: pd.DataFrame, path, float_format="%.6f") -> None:
    """Write ``frame`` as CSV atomically; levels written as in file names (0, 0.1)."""
    for column in ("noise", "test_noise", "epsilon"):
        if column in frame:
            frame = frame.assign(**{column: frame[column].map(format_level)})
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, float_format=float_format, lineterminator="\n")
    write_bytes_atomic(path, buffer.getvalue().encode())


def _link(path, out_dir: Path) -> str:
    return os.path.relpath(path, out_dir)


def _provenance_rows(provenance: dict) -> list[list[str]]:
    keys = [
        ("source", "source"),
        ("origin", "from"),
        ("rows", "labelled rows"),
        ("origin_sha256", "SHA-256 of the origin file"),
        ("train_csv_sha256", "SHA-256 of data/raw/train.csv"),
        ("test_csv_sha256", "SHA-256 of data/raw/test.csv"),
    ]
    return [[label, str(provenance[key])] for key, label in keys if key in provenance]


def write_report(
    *,
    metrics_paths,
    attack_paths,
    history_paths,
    train_benchmarks,
    all_benchmarks,
    provenance_path,
    settings: dict,
    preview_paths,
    out_md,
    out_dir,
    submission_info_path=None,
    eval_set_path=None,
) -> str:
    """Write ``out_md`` and its CSV tables and figures in ``out_dir``; return the
    markdown text."""
    out_dir = Path(out_dir)
    split_notes = []
    if eval_set_path is not None:
        split_notes = load_dataset(eval_set_path)[2].get("warnings", [])
    results = Results(metrics_paths, attack_paths, history_paths, train_benchmarks)
    evaluation = settings["evaluation"]
    confidence = evaluation.get("confidence", 0.95)
    alpha = evaluation.get("alpha", 0.05)
    tests = paired_tests(results, alpha, confidence)
    provenance = _load_json(provenance_path)
    job_seconds, span_seconds = run_span(all_benchmarks)

    tables = {
        "accuracy": results.accuracy,
        "timing": results.timing,
        "robustness": results.robustness,
        "adversarial": results.adversarial,
        "significance": tests,
    }
    for name, frame in tables.items():
        frame_to_csv(
            frame,
            out_dir / f"{name}.csv",
            float_format="%.4f" if name == "timing" else "%.6g",
        )
    figure_paths = {key: out_dir / "figures" / name for key, name in FIGURES.items()}
    figures.accuracy_vs_noise(results.accuracy, figure_paths["accuracy"])
    figures.robustness_heatmaps(results.robustness, figure_paths["robustness"])
    figures.adversarial_curves(results.adversarial, figure_paths["adversarial"])
    figures.learning_curves(results.histories, figure_paths["learning"])
    best_hidden, best_noise = results.best_variant()
    best_seed_record = max(
        (
            r
            for r in results.records
            if (int(r["hidden"]), float(r["noise"])) == (best_hidden, best_noise)
        ),
        key=lambda r: (r["accuracy"], -int(r["seed"])),
    )
    figures.confusion_matrix_plot(
        best_seed_record["confusion_matrix"],
        f"{best_seed_record['name']}: {100 * best_seed_record['accuracy']:.2f} % on "
        f"{results.n_eval} eval digits",
        figure_paths["confusion"],
    )

    n_seeds = sorted(set(results.accuracy.groupby(["hidden", "noise"]).size()))
    seed_phrase = " or ".join(map(str, n_seeds)) + (
        " seed" if n_seeds == [1] else " seeds"
    )
    ci = f"{100 * confidence:g} % t confidence interval of the mean"
    lines = [
        "# Noisy-MNIST report",
        "",
        "One-hidden-layer MLPs (784 -> hidden, ReLU -> 10, softmax) trained on clean",
        "and Gaussian-noised training digits, evaluated on a clean held-out split of "
        f"{results.n_eval} digits. Every accuracy is given as mean ± sample standard "
        f"deviation [{ci}] over {seed_phrase}.",
        "",
        "## Clean eval accuracy (%)",
        "",
        f"Per model: [accuracy.csv]({_link(out_dir / 'accuracy.csv', out_dir)}).",
        "",
        grid_table(
            results.accuracy, "noise", "hidden", confidence, "train noise", "{} hidden"
        ),
        "",
        f"![accuracy against noise]({_link(figure_paths['accuracy'], out_dir)})",
        "",
        "## Did training noise help?",
        "",
        "Each noise level against the clean-trained model of the same hidden size, by "
        "McNemar's exact test on the same eval images, **pooled over seeds** (the "
        "discordant pairs of the seed-matched models are summed; since the images "
        "repeat across seeds, this test does not see how much models vary from seed "
        "to seed). p-values are Holm-corrected across all the tests below; alpha = "
        f"{alpha:g}. A level counts as having helped or hurt only if its corrected "
        "p-value is below alpha **and** every seed pair moved in the same direction. "
        "The confidence interval is a t interval of the per-seed differences; with "
        "few seeds it is wide. Intervals in this report are not clipped to [0, 100].",
        "",
        *[f"- {s}" for s in verdict_sentences(tests, alpha)],
        "",
        tabulate(
            [
                [
                    r.hidden,
                    format_level(r.noise),
                    f"{r.seeds_agreeing} of {r.seeds}",
                    f"{r.difference_points:+.3f}",
                    _interval(r.difference_ci_low, r.difference_ci_high),
                    r.only_noisy_right,
                    r.only_clean_right,
                    f"{r.p_value:.3g}",
                    f"{r.p_holm:.3g}",
                    r.verdict,
                ]
                for r in tests.itertuples()
            ],
            headers=[
                "hidden",
                "train noise",
                "seeds agreeing",
                "Δ accuracy (points)",
                f"{100 * confidence:g} % CI over seeds",
                "only noisy right",
                "only clean right",
                "p",
                "p (Holm)",
                "verdict",
            ],
            tablefmt="github",
            disable_numparse=True,
        ),
        "",
        "## Robustness to test-time noise (%)",
        "",
        "Accuracy on noisy copies of the eval set (the same copies for every model: "
        f"base std {settings['noise']['base_std']:g}, seed "
        f"{evaluation.get('noise_seed', 11)}). Per model: "
        f"[robustness.csv]({_link(out_dir / 'robustness.csv', out_dir)}).",
        "",
    ]
    for hidden in sorted(results.robustness["hidden"].unique()):
        part = results.robustness[results.robustness["hidden"] == hidden]
        lines += [
            f"**{hidden} hidden** (rows: training noise, columns: test noise)",
            "",
            grid_table(
                part, "noise", "test_noise", confidence, "train noise", "test {}"
            ),
            "",
        ]
    lines += [
        f"![robustness heatmaps]({_link(figure_paths['robustness'], out_dir)})",
        "",
        "## Adversarial accuracy (%)",
        "",
        "White-box attacks on each model with its own input gradient: FGSM (one sign "
        f"step of size epsilon) and PGD ({evaluation.get('pgd_steps', 10)} sign steps "
        "of 2.5 epsilon / steps, projected onto the L-inf ball; no random start). "
        "Per model: "
        f"[adversarial.csv]({_link(out_dir / 'adversarial.csv', out_dir)}).",
        "",
    ]
    for attack in ("fgsm", "pgd"):
        for hidden in sorted(results.adversarial["hidden"].unique()):
            part = results.adversarial[
                (results.adversarial["hidden"] == hidden)
                & (results.adversarial["attack"] == attack)
            ]
            lines += [
                f"**{attack.upper()}, {hidden} hidden** (rows: training noise, "
                "columns: epsilon)",
                "",
                grid_table(
                    part, "noise", "epsilon", confidence, "train noise", "eps {}"
                ),
                "",
            ]
    lines += [
        f"![adversarial accuracy]({_link(figure_paths['adversarial'], out_dir)})",
        "",
        "## Training",
        "",
        f"![learning curves]({_link(figure_paths['learning'], out_dir)})",
        "",
        f"Best variant by mean clean eval accuracy: {best_hidden} hidden, training "
        f"noise {format_level(best_noise)}; confusion matrix of its best seed:",
        "",
        f"![confusion matrix]({_link(figure_paths['confusion'], out_dir)})",
        "",
    ]
    if submission_info_path is not None:
        info = _load_json(submission_info_path)
        lines += [
            "## Kaggle submission",
            "",
            f"[{Path(info['path']).name}]({_link(info['path'], out_dir)}): "
            f"{info['rows']} test digits predicted by "
            + (
                f"the ensemble of {len(info['models'])} seeds (averaged probabilities)"
                if len(info["models"]) > 1
                else "the single model"
            )
            + f" of {info['variant']}.",
            "",
        ]
    lines += [
        "## Timing",
        "",
        "Per variant, means over seeds. *train s*: the training loop alone (sum of "
        "the epochs); *job s*: the whole job as Snakemake's benchmark measured it "
        "(start-up, loading, training, saving); *samples / s*: median over epochs; "
        "peak RSS from the benchmark files. Per model: "
        f"[timing.csv]({_link(out_dir / 'timing.csv', out_dir)}).",
        "",
        timing_summary(results.timing),
        "",
        f"All {len(all_benchmarks)} jobs behind this report took {job_seconds:.1f} s "
        "of job time; from the first job's start to the last one's end "
        f"{span_seconds:.1f} s of wall time passed (the report job itself not "
        "included; after a partial rerun this spans the original jobs too).",
        "",
        "## Data",
        "",
        tabulate(
            _provenance_rows(provenance),
            headers=["", ""],
            tablefmt="github",
            disable_numparse=True,
        ),
        "",
        *[
            f"**Warning:** {note}; the accuracies above do not cover that digit fairly."
            for note in split_notes
        ],
        "",
        "Noise previews (top: clean, bottom: as trained): "
        + ", ".join(f"[{Path(p).stem}]({_link(p, out_dir)})" for p in preview_paths),
        "",
        "## Settings",
        "",
        "```yaml",
        yaml.safe_dump(settings, sort_keys=False).rstrip(),
        "```",
        "",
    ]
    text = "\n".join(lines)
    write_bytes_atomic(out_md, text.encode())
    return text
