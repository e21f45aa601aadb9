"""A process and everything it started, read from /proc (Linux), for the soak benchmarks.

Every thread's children count: the daemon starts its parser processes (a forkserver and its workers) from
a worker thread, and /proc/PID/task/PID/children lists only the main thread's.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(p) for p in (task / "children").read_text().split()]
    return found


def descendants(pid: int) -> list[int]:
    found, queue = [], [pid]
    while queue:
        direct = children(queue.pop())
        found += direct
        queue += direct
    return found


def tree_usage(pid: int) -> tuple[float, int]:
    """CPU seconds and RSS bytes of `pid` plus every process it started, however deep."""
    cpu, rss = 0.0, 0
    for p in [pid, *descendants(pid)]:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / TICK
            rss += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * PAGE
    return cpu, rss
