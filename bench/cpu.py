"""CPU time the benchmarks read from /proc (Linux): a process's, PostgreSQL's processes', and
the whole machine's busy time."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_seconds(pid: int) -> float | None:
    """User and system CPU seconds the process used so far; None when it is gone (or there
    is no /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the name before it may hold spaces
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def postgres_pids() -> list[int]:
    """The PostgreSQL server's processes on this machine (its backends included)."""
    pids = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    pids.append(int(entry.name))
            except OSError:  # gone meanwhile
                continue
    return pids


def machine_busy_seconds() -> float | None:
    """CPU seconds every core of the machine spent busy so far (idle, I/O wait and steal
    excepted); None without /proc."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = map(int, fields[1:8])
    return (user + nice + system + irq + softirq) / TICKS


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds used in a window: by the whole machine (None without /proc), by
    PostgreSQL's processes, and by the processes measured besides."""

    machine: float | None
    postgres: float
    processes: float


class CpuMeter:
    """The CPU time used from its creation to `stop`: the machine's, PostgreSQL's, and that of
    `pids` (the system's own processes, say)."""

    def __init__(self, pids: Sequence[int] = ()) -> None:
        self._pids = list(pids)
        self._machine = machine_busy_seconds()
        self._postgres = _seconds_of(postgres_pids())
        self._processes = _seconds_of(self._pids)

    def stop(self) -> CpuUse:
        machine = machine_busy_seconds()
        used = None if machine is None or self._machine is None else machine - self._machine
        return CpuUse(
            used,
            _used_since(self._postgres, _seconds_of(postgres_pids())),
            _used_since(self._processes, _seconds_of(self._pids)),
        )


def _seconds_of(pids: Iterable[int]) -> dict[int, float]:
    found = {pid: process_seconds(pid) for pid in pids}
    return {pid: seconds for pid, seconds in found.items() if seconds is not None}


def _used_since(then: dict[int, float], now: dict[int, float]) -> float:
    """A process started meanwhile used all of its time in the window; one that ended
    meanwhile is lost (the benchmarks' pools keep their connections open)."""
    return sum(seconds - then.get(pid, 0.0) for pid, seconds in now.items())
