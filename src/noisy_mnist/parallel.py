"""Worker processes that share the work of every mini-batch of one training run.

With ``workers > 1``, :meth:`noisy_mnist.mlp.MLP.fit` forks that many processes minus
one (the calling process is worker 0). For each mini-batch, every worker computes the
gradients of its slice of the batch; then every worker adds up all workers' gradients
for its own slice of the parameters and updates that slice. The parameters and
gradients live in shared memory, and two barriers per batch keep the workers in step.
The result is the same mini-batch algorithm; only the order of some float32 sums
changes with the number of workers.

Why processes: between the matrix products, an epoch is thousands of small NumPy
operations (the optimizer, gathering the batch, softmax) that BLAS threads do not
parallelise and Python threads cannot run at the same time.

The barriers spin on counters in shared memory, because a wake-up through the kernel
costs about as much as the work between two barriers. This relies on x86-64 making a
process's stores visible to others in program order: a worker that sees a peer's
counter also sees the gradients the peer wrote before it. On other machines, where
``fork`` is unavailable, and inside a daemonic process (which may not have children),
:func:`supported` is false and training stays in one process.

Workers ignore Ctrl-C and end on SIGTERM: worker 0 handles the interrupt and stops
them, so a Ctrl-C never prints a traceback per worker.
"""

from __future__ import annotations

import mmap
import multiprocessing
import os
import platform
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Callable

import numpy as np

_ERROR_BYTES = 2048
# A batch's barriers wait microseconds, so a waiting worker first just polls. Past
# a few hundred polls a peer is descheduled or worker 0 is between epochs: then
# yield the core; past some milliseconds (e.g. worker 0 logging an epoch), sleep.
_POLLS_BEFORE_YIELD = 200
_POLLS_BEFORE_SLEEP = 20_000
_SLEEP_SECONDS = 0.0005
_POLLS_BETWEEN_CHECKS = 1024
_STOP_SECONDS = 5.0


class WorkerError(RuntimeError):
    """A training worker process stopped before the training run ended."""


def supported() -> bool:
    """True where worker processes are available: Linux on x86-64, outside daemons."""
    return (
        sys.platform.startswith("linux")
        and platform.machine().lower() in ("x86_64", "amd64")
        and not multiprocessing.current_process().daemon
    )


def usable_workers(requested: int, batch_size: int) -> int:
    """How many workers training with ``requested`` workers really uses.

    One where workers are unsupported, and never more than a batch has rows.
    """
    return min(requested, batch_size) if supported() else 1


class SharedArrays:
    """NumPy arrays in one anonymous shared mapping, visible to forked children."""

    def __init__(self, specs: dict[str, tuple[tuple[int, ...], np.dtype]]):
        offsets, total = {}, 0
        for name, (shape, dtype) in specs.items():
            total = -(-total // 64) * 64  # each array starts on its own cache line
            offsets[name] = total
            total += int(np.prod(shape)) * np.dtype(dtype).itemsize
        self._mapping = mmap.mmap(-1, max(total, 1))  # MAP_SHARED | MAP_ANONYMOUS
        self.arrays = {
            name: np.frombuffer(
                self._mapping,
                dtype=dtype,
                count=int(np.prod(shape)),
                offset=offsets[name],
            ).reshape(shape)
            for name, (shape, dtype) in specs.items()
        }

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]


class SpinBarrier:
    """Waits until every worker has called :meth:`wait` as often as this one.

    ``counters`` is a shared int64 array of shape (workers, 8): one cache line per
    worker, so that writing one counter does not disturb the others' cache lines.
    ``check_peers`` runs now and then while waiting and raises if a peer is gone.
    """

    def __init__(self, counters: np.ndarray, rank: int, check_peers: Callable):
        self.counters = counters
        self.rank = rank
        self.others = [r for r in range(len(counters)) if r != rank]
        self.check_peers = check_peers
        self.count = 0

    def wait(self) -> None:
        self.count += 1
        counters, count = self.counters, self.count
        counters[self.rank, 0] = count
        for other in self.others:
            polls = 0
            while counters[other, 0] < count:
                polls += 1
                if polls <= _POLLS_BEFORE_YIELD:
                    continue
                if polls <= _POLLS_BEFORE_SLEEP:
                    os.sched_yield()
                else:
                    time.sleep(_SLEEP_SECONDS)
                if polls % _POLLS_BETWEEN_CHECKS == 0:
                    self.check_peers()


class Team:
    """The worker processes of one training run, seen from worker 0 (the caller).

    ``work(rank, barrier)`` is what each forked worker runs. Use as a context
    manager: leaving it, normally or by an exception, stops every worker.
    """

    def __init__(self, workers: int, work: Callable[[int, SpinBarrier], None]):
        self.workers = workers
        self._work = work
        self._shared = SharedArrays(
            {
                "counters": ((workers, 8), np.int64),
                "errors": ((workers, _ERROR_BYTES), np.uint8),
            }
        )
        self._processes: list = []
        self._parent_pid = os.getpid()
        self.barrier = SpinBarrier(self._shared["counters"], 0, self._check_children)

    def __enter__(self) -> Team:
        context = multiprocessing.get_context("fork")
        # a Ctrl-C while forking waits until the workers exist, so that __exit__
        # can stop them all; they inherit the mask and ignore SIGINT from then on
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            with warnings.catch_warnings():
                # Python 3.12+ warns about fork() in a process with threads; BLAS
                # libraries' idle threads do not hold locks that the child needs
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                for rank in range(1, self.workers):
                    process = context.Process(
                        target=self._child, args=(rank,), daemon=True
                    )
                    process.start()
                    self._processes.append(process)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        return self

    def __exit__(self, *exc_info) -> None:
        for process in self._processes:
            if process.is_alive():
                process.terminate()
        for process in self._processes:
            process.join(_STOP_SECONDS)
            if process.is_alive():  # SIGTERM did not end it
                process.kill()
                process.join()

    def _child(self, rank: int) -> None:
        # the caller's own handlers (e.g. one that only sets a flag) must not
        # keep a worker alive: SIGTERM ends it, Ctrl-C is worker 0's to handle
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        barrier = SpinBarrier(self._shared["counters"], rank, self._check_parent)
        try:
            self._work(rank, barrier)
        except BaseException as exc:  # report it to worker 0, never print it
            text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            message = text.encode("utf-8", "replace")[: _ERROR_BYTES - 1]
            errors = self._shared["errors"]
            errors[rank, : len(message)] = np.frombuffer(message, np.uint8)
            os._exit(1)
        os._exit(0)

    def _check_parent(self) -> None:
        if os.getppid() != self._parent_pid:  # worker 0 is gone: nobody to wait for
            os._exit(1)

    def _check_children(self) -> None:
        for rank, process in enumerate(self._processes, start=1):
            code = process.exitcode
            if code is None:
                continue
            raw = self._shared["errors"][rank].tobytes().rstrip(b"\0")
            reason = raw.decode("utf-8", "replace")
            if not reason and code < 0:
                name = signal.Signals(-code).name
                reason = f"killed by {name}"
                if name == "SIGKILL":
                    reason += " (out of memory? the kernel's OOM killer sends it)"
            raise WorkerError(
                f"training worker {rank} stopped: {reason or f'exit code {code}'}"
            )
