"""Soak the daemon: 1,000 local feeds (benchmarks/feedserver.py) that gain entries over time, for a few
minutes; print CPU and resident memory while polling and while idle, whether every entry was archived,
and the shortest gap between two polls of one feed.

    .venv/bin/python benchmarks/daemon_soak.py --feeds 1000 --minutes 4

Figures are read from /proc (Linux). Intervals are short so that a few minutes hold several polls of
every feed: default_interval = --interval, min_interval = half of it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from proctree import tree_usage

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--interval", type=int, default=60, help="default_interval in seconds")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of idle measurement at the end")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="daemon-soak-"))
    server = subprocess.Popen(
        [sys.executable, str(REPO / "benchmarks" / "feedserver.py"), "--feeds", str(args.feeds), "--warm"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    base = re.search(r"http://[\d.:]+", server.stdout.readline()).group(0)  # type: ignore[union-attr]
    feeds = "\n".join(f"  - url: {base}/feed/{i}.xml\n    category: c{i % 10}" for i in range(args.feeds))
    config = work / "feeds.yaml"
    config.write_text(
        f"settings:\n  archive_dir: archive\n  default_interval: {args.interval}s\n"
        f"  min_interval: {args.interval // 2}s\n  max_interval: {args.interval * 2}s\n"
        "  publish: false\n  adaptive_interval: false\n  per_host_delay: 0\n  per_host_concurrency: 16\n"
        "categories:\n" + "".join(f"  c{i}: {{}}\n" for i in range(10)) + "feeds:\n" + feeds + "\n",
        encoding="utf-8",
    )
    log_path = work / "daemon.log"
    with log_path.open("w") as log_file:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "aggregator", "--config", str(config), "daemon", "--log-format", "json"],
            cwd=REPO,
            stderr=log_file,
        )
        started = time.monotonic()
        samples: list[tuple[float, float, int]] = []
        next_mutation = started + 30
        end = started + args.minutes * 60
        while time.monotonic() < end:
            time.sleep(5)
            samples.append((time.monotonic(), *tree_usage(daemon.pid)))
            if time.monotonic() >= next_mutation:
                request = urllib.request.Request(f"{base}/_control/mutate?fraction=0.1&add=3", method="POST")
                urllib.request.urlopen(request).read()
                next_mutation += 30
        # Let the last mutation's polls land, then go idle: a SIGHUP'd config with hour-long intervals
        # leaves nothing due, so what is measured next is the daemon doing nothing.
        stats = json.loads(urllib.request.urlopen(f"{base}/_control/stats").read())
        time.sleep(args.interval * 1.5)
        text = config.read_text(encoding="utf-8")
        config.write_text(
            text.replace(f"default_interval: {args.interval}s", "default_interval: 2h")
            .replace(f"min_interval: {args.interval // 2}s", "min_interval: 1h")
            .replace(f"max_interval: {args.interval * 2}s", "max_interval: 4h"),
            encoding="utf-8",
        )
        daemon.send_signal(signal.SIGHUP)
        time.sleep(5)
        idle_start = (time.monotonic(), *tree_usage(daemon.pid))
        time.sleep(args.idle)
        idle_end = (time.monotonic(), *tree_usage(daemon.pid))
        daemon.send_signal(signal.SIGTERM)
        stop_started = time.monotonic()
        code = daemon.wait(timeout=120)
        stop_seconds = time.monotonic() - stop_started
    server.terminate()
    server.wait()

    polls: dict[str, list[datetime]] = defaultdict(list)
    for line in log_path.read_text().splitlines():
        event = json.loads(line)
        if "feed" in event and "outcome" in event:
            polls[event["feed"]].append(datetime.fromisoformat(event["time"]))
    shortest = min(
        ((b - a).total_seconds() for times in polls.values() for a, b in itertools.pairwise(times)),
        default=float("nan"),
    )
    with sqlite3.connect(work / "archive" / "aggregator.db") as conn:
        archived = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]

    busy = [s for s in samples if s[0] - started > 10]
    cpu_busy = (busy[-1][1] - busy[0][1]) / (busy[-1][0] - busy[0][0]) if len(busy) > 1 else float("nan")
    cpu_idle = (idle_end[1] - idle_start[1]) / (idle_end[0] - idle_start[0])
    print(f"feeds: {args.feeds}, interval {args.interval}s (min {args.interval // 2}s), {args.minutes:g} min")
    print(
        f"polls: {sum(map(len, polls.values()))} over {len(polls)} feeds; shortest gap between two polls of one feed:"
        f" {shortest:.1f}s (min_interval {args.interval // 2}s)"
    )
    print(
        f"entries: archived {archived}, server holds {stats['entries']} -> "
        + ("all archived" if archived >= stats["entries"] else "MISSING")
    )
    print(
        f"CPU while polling: {cpu_busy * 100:.1f}% of one core; RSS peak {max(s[2] for s in samples) / 2**20:.0f} MiB"
        " (daemon + parser processes)"
    )
    print(f"CPU idle: {cpu_idle * 100:.2f}% of one core; RSS idle {idle_end[2] / 2**20:.0f} MiB")
    print(f"stop: exit {code} after {stop_seconds:.1f}s; integrity_check: {integrity}; log: {log_path}")


if __name__ == "__main__":
    main()
