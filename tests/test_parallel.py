"""Worker processes of MLP.fit: how they fail and stop.

The arithmetic of training with workers is checked in test_mlp.py against a float64
reference; these tests are about processes. Each scenario that could hang runs in a
subprocess with a timeout, so that a regression fails instead of stalling the suite.
"""

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from small_fit import fit_small

import noisy_mnist
from noisy_mnist import parallel
from noisy_mnist.mlp import MLP

pytestmark = pytest.mark.skipif(
    not parallel.supported(), reason="worker processes need Linux on x86-64"
)


def run_python(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``code`` in a new Python that can ``from small_fit import fit_small``, in a
    process group of its own (so that a Ctrl-C it sends there does not reach pytest).
    """
    src = str(Path(noisy_mnist.__file__).resolve().parents[1])
    tests = str(Path(__file__).resolve().parent)
    path = os.pathsep.join(filter(None, [src, tests, os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": path},
        start_new_session=True,
    )


def test_a_callers_own_sigterm_handler_does_not_keep_workers_alive():
    # a handler that only sets a flag would ignore the SIGTERM that stops workers
    result = run_python(
        """
        import multiprocessing, signal
        from small_fit import fit_small
        signal.signal(signal.SIGTERM, lambda *args: None)

        def stop(record):
            raise RuntimeError("stop after one epoch")

        try:
            fit_small(workers=2, on_epoch=stop)
        except RuntimeError as exc:
            print("caught:", exc)
        print("children:", len(multiprocessing.active_children()))
        """
    )
    assert result.returncode == 0, result.stderr
    assert "caught: stop after one epoch" in result.stdout
    assert "children: 0" in result.stdout


def test_ctrl_c_stops_training_without_a_traceback_from_any_worker():
    result = run_python(
        """
        import os, signal
        from small_fit import fit_small

        def interrupt(record):
            os.killpg(os.getpgid(0), signal.SIGINT)  # as Ctrl-C in a terminal

        try:
            fit_small(workers=2, on_epoch=interrupt)
        except KeyboardInterrupt:
            print("interrupted")
        """
    )
    assert result.returncode == 0, result.stderr
    assert "interrupted" in result.stdout
    assert "Traceback" not in result.stderr


def test_a_failure_while_starting_workers_leaves_none_behind(monkeypatch):
    start = multiprocessing.process.BaseProcess.start
    started = []

    def start_once(self):
        if started:
            raise OSError("fork failed (simulated)")
        started.append(self)
        start(self)

    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", start_once)
    with pytest.raises(OSError, match="fork failed"):
        fit_small(workers=3)
    assert len(started) == 1
    assert multiprocessing.active_children() == []


def test_a_killed_worker_is_named_with_its_signal(monkeypatch):
    parent = os.getpid()
    backprop = MLP._backprop

    def die_in_workers(self, *args, **kwargs):
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return backprop(self, *args, **kwargs)

    monkeypatch.setattr(MLP, "_backprop", die_in_workers)
    with pytest.raises(
        parallel.WorkerError, match="training worker 1 stopped: killed by SIGKILL"
    ):
        fit_small(workers=2)
    assert multiprocessing.active_children() == []


def _supported_in_a_daemon(queue):
    queue.put(parallel.supported())


def test_a_daemonic_process_trains_in_one_process():
    # daemonic processes (e.g. multiprocessing.Pool's) may not start children
    queue = multiprocessing.get_context("fork").Queue()
    daemon = multiprocessing.get_context("fork").Process(
        target=_supported_in_a_daemon, args=(queue,), daemon=True
    )
    daemon.start()
    assert queue.get(timeout=30) is False
    daemon.join()


@pytest.mark.parametrize(
    ("requested", "batch_size", "expected"), [(1, 64, 1), (2, 64, 2), (8, 3, 3)]
)
def test_usable_workers_never_exceed_a_batchs_rows(requested, batch_size, expected):
    assert parallel.usable_workers(requested, batch_size) == expected
