"""How many CPU threads a decoding step runs on, chosen by timing the steps themselves.

A one-position step of a 135M model is about 250 small matmuls and ops of tens of
microseconds each, and every one that torch splits over threads makes the idle threads wake
up. metagen lets OpenMP's waiting threads sleep (metagen/__init__.py: spinning ones starve
each other on a busy machine), and on a virtual machine a sleeping CPU takes long to wake:
on a 2-vCPU Xeon (AVX-512, AMX), int4, one row, a step took 53 ms on 2 threads and 23 ms on
1; four rows, 69 ms against 36. On a bare-metal machine with many cores the threads can win.
So each step size is timed on a few thread counts while real decoding runs, and the fastest
is kept.

This must change the speed only, never the text a seed gives, so it is done only where a
step's logits are bitwise the same on any number of threads: the int4 and int8 formats, whose
kernels split a matmul's output columns over threads and never a sum (tests/test_threads.py
checks 1 to 4 threads), as does the attention over a shared prompt. float32 and bfloat16 steps
stay on torch's count: a float32 matmul of one row split its sums on 3 threads. A prompt's
pass stays on torch's count in every format, since its wide matmuls do split sums (the
logits moved by up to 0.66 between 1 and 2 threads).

generator.run_search runs each decoding strategy inside `decoding`; model.Transformer.forward
runs a one-position step inside `step` and a prompt's pass inside `prompt`.
"""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch

# The weight formats whose steps are timed: their kernels split no sum (the docstring above).
TIMED_FORMATS = ("int4", "int8")
# Timed steps per thread count before a choice; the median is compared, so one step slowed
# by another process does not decide.
TRIALS = 3
# A choice is measured again after this many steps of its size (a long-running `metagen
# serve` sees the machine's load come and go).
RETUNE_AFTER = 4096


def thread_counts(available: int) -> tuple[int, ...]:
    """The counts worth timing: 1, the powers of two below `available`, and `available`."""
    counts, n = [], 1
    while n < available:
        counts.append(n)
        n *= 2
    return tuple(counts + [available])


def size_class(rows: int) -> int:
    """Steps of 1, 2-3, 4-7, 8-15, ... rows share a choice (rows leave a batch as they end)."""
    return rows.bit_length()


@dataclass
class _Tuning:
    """The timings for one step size, then its choice."""

    counts: tuple[int, ...]
    times: dict[int, list[float]] = field(default_factory=dict)
    chosen: int | None = None
    steps_since: int = 0

    def next_count(self) -> int:
        if self.chosen is not None:
            return self.chosen
        # round robin, so a slow spell of the machine falls on every count alike
        return min(self.counts, key=lambda n: len(self.times.get(n, [])))

    def record(self, count: int, seconds: float) -> None:
        if self.chosen is not None:
            self.steps_since += 1
            if self.steps_since >= RETUNE_AFTER:
                self.times, self.chosen, self.steps_since = {}, None, 0
            return
        self.times.setdefault(count, []).append(seconds)
        if all(len(self.times.get(n, [])) >= TRIALS for n in self.counts):
            self.chosen = min(self.counts, key=lambda n: statistics.median(self.times[n]))


class StepThreads:
    """Runs the decoding loop on one thread, and each model step in it on the thread count
    measured fastest for its size.

    The loop's own work (the logits processors, the choice of a token) stays on one thread:
    its vocabulary-wide sums would round differently on another count, and the text would
    then depend on a timing. `clock` is injectable for tests.
    """

    def __init__(self, tuned: bool = True, clock: Callable[[], float] = time.perf_counter):
        self.tuned = tuned  # False: a step runs on torch's count (the one outside the loop)
        self.clock = clock
        self._tunings: dict[tuple[int, int], _Tuning] = {}
        self._available: int | None = None  # torch's thread count outside the loop, while one runs

    def chosen(self, rows: int) -> int | None:
        """The count chosen for steps of `rows` rows at torch's thread count, if any yet."""
        tuning = self._tunings.get((self._available or torch.get_num_threads(), size_class(rows)))
        return None if tuning is None else tuning.chosen

    @contextmanager
    def decoding(self) -> Iterator[None]:
        """The body (a decoding strategy) on one thread but for the model's passes; torch's count after."""
        if self._available is not None:  # already inside a loop
            yield
            return
        self._available = torch.get_num_threads()
        try:
            with self._on(1, self._available):
                yield
        finally:
            self._available = None

    def prompt_count(self) -> int:
        """The thread count a prompt's pass runs on now (prompt)."""
        return self._available or torch.get_num_threads()

    @contextmanager
    def prompt(self) -> Iterator[None]:
        """The body (a prompt's pass) on torch's own count, also inside a decoding loop."""
        current = torch.get_num_threads()
        with self._on(self._available or current, current):
            yield

    @contextmanager
    def step(self, rows: int) -> Iterator[None]:
        """Run the body (one model step of `rows` rows) on the chosen or next trial count."""
        current = torch.get_num_threads()
        available = self._available or current
        if not self.tuned or available <= 1:
            with self._on(available, current):
                yield
            return
        key = (available, size_class(rows))
        tuning = self._tunings.get(key)
        if tuning is None:
            tuning = self._tunings[key] = _Tuning(thread_counts(available))
        count = tuning.next_count()
        with self._on(count, current):
            started = self.clock()
            yield
            tuning.record(count, self.clock() - started)

    @staticmethod
    @contextmanager
    def _on(count: int, current: int) -> Iterator[None]:
        """The body on `count` threads, then back to `current`."""
        if count != current:
            torch.set_num_threads(count)
        try:
            yield
        finally:
            if count != current:
                torch.set_num_threads(current)
