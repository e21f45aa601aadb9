"""Benchmark `aggregator fetch-now` against lemon24/reader on the same local feed server, in one run.

    .venv/bin/python benchmarks/run.py                      # 1,000 feeds, aggregator and reader
    .venv/bin/python benchmarks/run.py --feeds 10000 --skip-reader

Phases, each run as a fresh subprocess per tool against the same server:
  cold    first poll into an empty archive: every body fetched, parsed and stored;
  warm    second poll: every feed answers 304;
  mutate  a seeded 10% of the feeds gain 5 entries each; the rest answer 304.

For every phase it prints wall time, CPU time (user+sys of the tool and all its descendants, including
parser processes), peak memory (the sum of PSS over the tool's process tree, sampled every 50 ms, and
the largest single process's max RSS), entries/s and feeds/s, and checks that each archive holds exactly
the entries the server serves. See benchmarks/README.md for setting up reader's own venv.
"""

from __future__ import annotations

import argparse
import compileall
import ctypes
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_READER_PYTHON = Path("/work/bench-venv/bin/python")
PR_SET_CHILD_SUBREAPER = 36

READER_SCRIPT = """\
import logging, sys
from reader import make_reader

db, mode = sys.argv[1], sys.argv[2]
reader = make_reader(db)
if mode in ("add", "add-search"):
    for url in open(sys.argv[3]).read().split():
        reader.add_feed(url, exist_ok=True)
    if mode == "add-search":
        reader.enable_search()
else:
    logging.basicConfig(level=logging.ERROR)
    # scheduled=False: poll every feed now, as fetch-now does (3.26 would otherwise skip feeds not due).
    reader.update_feeds(scheduled=False, workers=int(sys.argv[3]))
    if mode == "update-search":
        # The same work as fetch-now, which leaves the archive searchable when it exits: reader indexes
        # for search in a separate step.
        reader.update_search()
reader.close()
"""


@dataclass
class Measurement:
    wall: float
    cpu: float
    peak_tree_mb: float  # sum of PSS over the process tree, sampled
    peak_process_mb: float  # largest ru_maxrss of any process in the tree
    returncode: int
    stored: int = 0
    expected: int = 0
    failed_feeds: int = 0

    @property
    def verified(self) -> bool:
        return self.returncode == 0 and self.stored == self.expected and self.failed_feeds == 0


def _children_by_parent() -> dict[int, list[int]]:
    """Every process's direct children, from one pass over /proc (no psutil needed)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def _children_of(pid: int) -> list[int]:
    return _children_by_parent().get(pid, [])


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class TreeSampler(threading.Thread):
    """Samples the total PSS of a process and all its descendants until stopped."""

    def __init__(self, root: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.interval = interval
        self.peak_kb = 0
        self.stopped = threading.Event()

    def tree(self) -> list[int]:
        # One pass over /proc per sample, whatever the tree's size: a pass per process in the tree cost
        # ~2 ms of CPU each, every 50 ms, so a tool of five processes (the aggregator with its parser
        # processes) paid ~18% of a core to the sampler on the cores it was measured on, and reader 4%.
        children = _children_by_parent()
        pids, todo = [], [self.root]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            todo.extend(children.get(pid, []))
        return pids

    def run(self) -> None:
        while not self.stopped.is_set():
            self.peak_kb = max(self.peak_kb, sum(_pss_kb(pid) for pid in self.tree()))
            self.stopped.wait(self.interval)


def _become_subreaper() -> None:
    # Orphaned descendants (multiprocessing's forkserver outlives the main process by a moment) are
    # re-parented to us, so we can reap them and count their CPU time too.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _reap_orphans(keep: set[int], deadline: float = 10.0) -> float:
    """Wait for every child of ours except `keep`; returns the largest max RSS among them (MB)."""
    largest = 0.0
    stop = time.monotonic() + deadline
    while time.monotonic() < stop:
        others = [pid for pid in _children_of(os.getpid()) if pid not in keep]
        if not others:
            break
        for pid in others:
            try:
                waited, _status, usage = os.wait4(pid, os.WNOHANG)
            except ChildProcessError:
                continue
            if waited:
                largest = max(largest, usage.ru_maxrss / 1024)
        time.sleep(0.02)
    return largest


def measure(command: list[str], log: Path, keep: set[int]) -> Measurement:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(command)}\n".encode())
        out.flush()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    sampler = TreeSampler(process.pid)
    sampler.start()
    _pid, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    sampler.stopped.set()
    sampler.join()
    orphan_rss = _reap_orphans(keep)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Measurement(
        wall=wall,
        cpu=cpu,
        peak_tree_mb=sampler.peak_kb / 1024,
        peak_process_mb=max(usage.ru_maxrss / 1024, orphan_rss),
        returncode=process.returncode,
    )


def _count(db: Path, sql: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(sql).fetchone()[0])


def _control(base: str, path: str, method: str = "GET") -> dict[str, int]:
    request = urllib.request.Request(base + path, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def start_server(feeds: int, seed: int, latency: float) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, str(HERE / "feedserver.py"), "--feeds", str(feeds), "--seed", str(seed), "--warm"]
    if latency:
        command += ["--latency", str(latency)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    line = server.stdout.readline()
    if not line.startswith("serving"):
        server.kill()
        raise SystemExit(f"feed server failed to start: {line!r}")
    return server, line.rsplit(" ", 1)[1].strip().rstrip("/")


def write_config(directory: Path, base: str, feeds: int, concurrency: int, per_host: int) -> Path:
    lines = [
        "settings:",
        f"  archive_dir: {directory / 'aggregator-archive'}",
        f"  concurrency: {concurrency}",
        f"  per_host_concurrency: {per_host}",
        "  per_host_delay: 0",
        "  publish: false",
        "categories:",
        "  bench:",
        "    title: Benchmark",
        "feeds:",
    ]
    for i in range(feeds):
        lines += [f"  - url: {base}/feed/{i}.xml", "    category: bench"]
    path = directory / "feeds.yaml"
    path.write_text("\n".join(lines) + "\n")
    (directory / "urls.txt").write_text("\n".join(f"{base}/feed/{i}.xml" for i in range(feeds)) + "\n")
    return path


class Tool:
    name = ""

    def run(self, log: Path, keep: set[int]) -> Measurement:
        raise NotImplementedError


class Aggregator(Tool):
    name = "aggregator"

    def __init__(self, config: Path, python: Path) -> None:
        self.config = config
        self.python = python
        self.db = config.parent / "aggregator-archive" / "aggregator.db"

    def run(self, log: Path, keep: set[int]) -> Measurement:
        command = [str(self.python), "-m", "aggregator", "--config", str(self.config), "fetch-now", "--no-progress"]
        result = measure(command, log, keep)
        result.stored = _count(self.db, "SELECT count(*) FROM entries")
        result.failed_feeds = _count(self.db, "SELECT count(*) FROM feeds WHERE last_status IN ('error', 'gone')")
        return result


class Reader(Tool):
    """lemon24/reader's update_feeds; with `search`, update_search after it (what leaves its archive
    searchable, as fetch-now's does)."""

    def __init__(self, python: Path, directory: Path, workers: int, *, search: bool = False) -> None:
        self.name = "reader+search" if search else "reader"
        self.search = search
        self.python = python
        self.directory = directory
        self.workers = workers
        self.db = directory / ("reader-search.sqlite" if search else "reader.sqlite")
        self.script = directory / "reader_update.py"
        self.script.write_text(READER_SCRIPT)
        subprocess.run(
            [
                str(python),
                str(self.script),
                str(self.db),
                "add-search" if search else "add",
                str(directory / "urls.txt"),
            ],
            check=True,
        )

    def run(self, log: Path, keep: set[int]) -> Measurement:
        mode = "update-search" if self.search else "update"
        command = [str(self.python), str(self.script), str(self.db), mode, str(self.workers)]
        result = measure(command, log, keep)
        result.stored = _count(self.db, "SELECT count(*) FROM entries")
        result.failed_feeds = _count(self.db, "SELECT count(*) FROM feeds WHERE last_exception IS NOT NULL")
        return result


def _row(label: str, values: list[str]) -> str:
    return f"| {label:<28} | " + " | ".join(f"{v:>12}" for v in values) + " |"


def print_table(results: dict[str, dict[str, Measurement]], feeds: int, new_entries: dict[str, int]) -> None:
    tools = list(next(iter(results.values())))
    ours, peers = tools[-1], tools[:-1]  # the aggregator runs last; a ratio against each peer
    headers = [*tools, *(f"vs {peer}" for peer in peers)]
    print()
    print(_row("phase / figure", headers))
    print("|" + "-" * 30 + "|" + "|".join("-" * 14 for _ in headers) + "|")
    for phase, by_tool in results.items():

        def line(label: str, value, fmt: str, better_low: bool, by_tool=by_tool, phase=phase) -> None:  # type: ignore[no-untyped-def]
            values = [value(by_tool[t]) for t in tools]
            cells = [format(v, fmt) for v in values]
            mine = values[-1]
            for theirs in values[:-1]:
                ratio = (theirs / mine if better_low else mine / theirs) if theirs and mine else float("nan")
                cells.append(f"{ratio:.2f}x")
            print(_row(f"{phase}: {label}", cells))

        line("wall s", lambda m: m.wall, ".2f", True)
        line("CPU s (user+sys)", lambda m: m.cpu, ".2f", True)
        line("peak PSS, tree MB", lambda m: m.peak_tree_mb, ".0f", True)
        line("peak RSS, 1 process MB", lambda m: m.peak_process_mb, ".0f", True)
        line("entries/s", lambda m, p=phase: new_entries[p] / m.wall, ",.0f", False)
        line("feeds/s", lambda m: feeds / m.wall, ",.0f", False)
        print(_row(f"{phase}: stored / expected", [f"{by_tool[t].stored}/{by_tool[t].expected}" for t in tools]))
        print(_row(f"{phase}: verified", ["yes" if by_tool[t].verified else "NO" for t in tools]))
    print()
    print(f"vs X: how many times better {ours} is than X (X / {ours} for times and memory).")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark aggregator fetch-now against lemon24/reader.")
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--skip-reader", action="store_true")
    parser.add_argument(
        "--skip-reader-search", action="store_true", help="leave out reader + update_search (the same work)"
    )
    parser.add_argument("--reader-python", type=Path, default=DEFAULT_READER_PYTHON)
    parser.add_argument(
        "--aggregator-python",
        type=Path,
        default=Path(sys.executable),
        help="the Python whose installed aggregator is measured (default: this one)",
    )
    parser.add_argument("--reader-workers", type=int, default=4, help="reader's update_feeds(workers=)")
    parser.add_argument("--concurrency", type=int, default=16, help="aggregator's concurrency setting")
    parser.add_argument("--per-host", type=int, default=16, help="aggregator's per_host_concurrency setting")
    parser.add_argument("--mutate-fraction", type=float, default=0.1)
    parser.add_argument("--latency", type=float, default=0.0, help="server latency per response, seconds")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--phases", default="cold,warm,mutate")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (databases, logs)")
    args = parser.parse_args(argv)

    if not args.skip_reader and not args.reader_python.exists():
        print(f"error: {args.reader_python} not found; set up reader's venv (benchmarks/README.md)", file=sys.stderr)
        print("       or pass --reader-python, or --skip-reader", file=sys.stderr)
        return 2
    _become_subreaper()
    # pip compiles an installed package's bytecode, reader's included; an editable checkout run with
    # PYTHONDONTWRITEBYTECODE would recompile ours on every run and the warm phase would measure that.
    compileall.compile_dir(str(HERE.parent / "aggregator"), quiet=1)
    directory = Path(tempfile.mkdtemp(prefix="aggregator-bench-"))
    server, base = start_server(args.feeds, args.seed, args.latency)
    keep = {server.pid}
    log = directory / "run.log"
    print(f"{args.feeds} feeds served from {base}; work folder {directory}")
    try:
        config = write_config(directory, base, args.feeds, args.concurrency, args.per_host)
        tools: list[Tool] = []
        if not args.skip_reader:
            tools.append(Reader(args.reader_python, directory, args.reader_workers))
            if not args.skip_reader_search:
                tools.append(Reader(args.reader_python, directory, args.reader_workers, search=True))
        tools.append(Aggregator(config, args.aggregator_python))
        results: dict[str, dict[str, Measurement]] = {}
        new_entries: dict[str, int] = {}
        previous = 0
        for phase in args.phases.split(","):
            if phase == "mutate":
                changed = _control(base, f"/_control/mutate?fraction={args.mutate_fraction}", "POST")
                print(f"mutate: {changed['changed']} feeds gained entries")
            expected = _control(base, "/_control/stats")["entries"]
            new_entries[phase] = expected - previous
            previous = expected
            results[phase] = {}
            for tool in tools:
                measured = tool.run(log, keep)
                measured.expected = expected
                results[phase][tool.name] = measured
                print(
                    f"{phase:>6} {tool.name:>10}: {measured.wall:7.2f}s wall, {measured.cpu:7.2f}s CPU, "
                    f"{measured.peak_tree_mb:5.0f} MB tree PSS, stored {measured.stored}/{expected}"
                    + (
                        ""
                        if measured.verified
                        else f"  NOT VERIFIED (exit {measured.returncode}, "
                        f"{measured.failed_feeds} failed feeds; see {log})"
                    ),
                    flush=True,
                )
        print_table(results, args.feeds, new_entries)
        ok = all(m.verified for by_tool in results.values() for m in by_tool.values())
        return 0 if ok else 1
    finally:
        server.terminate()
        server.wait()
        if args.keep:
            print(f"kept {directory}")
        else:
            import shutil

            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
