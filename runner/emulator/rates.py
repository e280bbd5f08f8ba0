"""Calls per operation per second: what a benchmark needs to know of the emulator.

A benchmark of a thousand jobs must tell the runner's cost from the
emulator's, and must see whether the runner keeps under AWS's quotas (for
instance 10 or 25 FilterLogEvents a second). So every request is counted by
its operation and by the whole second of the emulator's clock it arrived in
(the wall clock unless the emulator was given another), and each operation
keeps its peak: the most calls it had in any one second. The report adds the
emulator's own process CPU time, so a benchmark that runs the emulator in a
child process can read it over HTTP (``GET /_emulator/rates``).

Counting costs O(1) a request and memory O(operations): only the current
second and the peak are kept, never a history.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Rate:
    """One operation's (or every operation's) calls: in all, this second, at peak."""

    total: int = 0
    second: int | None = None  # the second being counted
    in_second: int = 0
    peak: int = 0  # the most calls in one second
    peak_second: int | None = None  # the first second that had them

    def add(self, second: int) -> None:
        if second != self.second:
            self.second = second
            self.in_second = 0
        self.in_second += 1
        self.total += 1
        if self.in_second > self.peak:
            self.peak = self.in_second
            self.peak_second = second

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "peak_per_second": self.peak,
            "peak_second": self.peak_second,
        }


class RateCounter:
    """Requests by operation and second of ``clock``, with each operation's peak."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        self.operations: dict[str, Rate] = {}
        self.every = Rate()  # all operations together
        self._cpu_at_reset = time.process_time()
        self._wall_at_reset = time.monotonic()

    def count(self, operation: str) -> None:
        second = math.floor(self.clock())
        rate = self.operations.get(operation)
        if rate is None:
            rate = self.operations[operation] = Rate()
        rate.add(second)
        self.every.add(second)

    def total(self, operation: str) -> int:
        rate = self.operations.get(operation)
        return rate.total if rate is not None else 0

    def report(self) -> dict[str, Any]:
        """What ``GET /_emulator/rates`` answers."""
        cpu = time.process_time()
        return {
            "requests": self.every.total,
            "peak_per_second": self.every.peak,
            "peak_second": self.every.peak_second,
            "operations": {
                name: rate.to_json() for name, rate in sorted(self.operations.items())
            },
            # this process's CPU (user + system) since the counters were reset,
            # and in all; an emulator sharing its process shares these
            "cpu_seconds": round(cpu - self._cpu_at_reset, 6),
            "process_cpu_seconds": round(cpu, 6),
            "wall_seconds": round(time.monotonic() - self._wall_at_reset, 6),
        }
