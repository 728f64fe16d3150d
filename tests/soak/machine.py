"""CPU time this machine lost to its hypervisor while a schedule ran (Linux ``/proc/stat``).

On a virtual machine, *steal* is time a vCPU was ready to run and the hypervisor ran
something else (another guest). The soak is a timing test on 2 vCPUs: a schedule that ran
while a neighbour took a third of the CPU is not comparable with one that ran alone, and
the load average alone cannot tell the two apart (both show runnable threads waiting).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import attrs

PROC_STAT: Final = Path("/proc/stat")


def read_cpu_times(path: Path = PROC_STAT) -> tuple[int, int] | None:
    """(steal, total) in clock ticks since boot, over all CPUs; ``None`` where unreadable.

    ``total`` is user + nice + system + idle + iowait + irq + softirq + steal (guest time is
    already inside user and nice; proc(5)).
    """
    try:
        first = path.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if first[:1] != ["cpu"] or len(first) < 9:
        return None
    ticks = [int(value) for value in first[1:9]]
    return ticks[7], sum(ticks)


@attrs.define
class StealMeter:
    """Samples :func:`read_cpu_times`; the share of CPU time stolen overall and at worst.

    Percentages are of all CPUs' time (100 = every vCPU stolen all the time); ``None``
    before two samples or where ``/proc/stat`` cannot be read.
    """

    path: Path = PROC_STAT
    first: tuple[int, int] | None = None
    last: tuple[int, int] | None = None
    worst_percent: float | None = None

    def sample(self) -> None:
        """Read the counters; the interval since the last sample may raise the worst."""
        now = read_cpu_times(self.path)
        if now is None:
            return
        if self.last is None:
            self.first = now
        else:
            share = _percent(self.last, now)
            if share is not None:
                self.worst_percent = max(self.worst_percent or 0.0, share)
        self.last = now

    @property
    def mean_percent(self) -> float | None:
        """Stolen share from the first sample to the last."""
        if self.first is None or self.last is None:
            return None
        return _percent(self.first, self.last)


def _percent(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    total = after[1] - before[1]
    if total <= 0:
        return None
    return round(100.0 * (after[0] - before[0]) / total, 1)
