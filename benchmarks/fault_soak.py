"""Fault soak: the daemon (with --serve) polls 1,000 local feeds for half an hour or more while faults are
injected at random, then the archive is checked against the feed server's own record of what it served.

    sudo .venv/bin/python benchmarks/fault_soak.py --minutes 30          # root: the archive on a small tmpfs

Injected, each logged with its time: feeds that fail (HTTP 500, dropped connections, no answer, garbage),
feeds gaining entries and editing them, SIGHUP reloads that remove and add feeds, SIGKILL of the daemon
followed by a restart, SIGKILL of a parser process, the archive's disk filling up and being freed (only as
root: the archive folder is a tmpfs mount of --disk-mb), and `fetch-now` beside the daemon.

At the end every fault is cleared, every feed put back, the daemon stopped with SIGTERM and one `fetch-now`
brings the archive level with the server. Then it prints, from the server's record and the archive:
- entries: every entry served archived exactly once, with its latest version; revisions no more than the
  versions served (and each entry's revision count matching its rows in entry_revisions);
- polls: the shortest gap between two polls of a feed by the daemon, and every gap under min_interval
  (those right after a SIGKILL restart counted apart: a killed daemon cannot record its last polls);
- /healthz: "degraded" while the disk was full, and not otherwise;
- memory: the process tree's RSS after warm-up, first and last quarter, and the slope;
- logs: tracebacks (there must be none) and the final stop's exit code and time.
Publishing is off (publish: false): this soak is about polling and storing; publishing has its own bench.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from proctree import children, descendants, tree_usage

REPO = Path(__file__).resolve().parents[1]
FAULTS = ("500", "reset", "timeout", "garbage")


def tree_rss(pid: int) -> int:
    return tree_usage(pid)[1]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.work = Path(tempfile.mkdtemp(prefix="fault-soak-"))
        self.archive = self.work / "archive"
        self.archive.mkdir()
        self.events: list[dict[str, object]] = []
        self.health: list[tuple[float, int, str]] = []
        self.memory: list[tuple[float, int]] = []
        self.kills: list[float] = []
        self.disk_full: tuple[float, float] | None = None
        self.daemon: subprocess.Popen[bytes] | None = None
        self.incarnation = 0
        self.port = free_port()
        self.tmpfs = False

    # --- set-up -------------------------------------------------------------------------------------

    def log(self, what: str, /, **detail: object) -> None:
        event = {"t": round(time.time(), 3), "event": what, **detail}
        self.events.append(event)
        print(f"[{time.strftime('%H:%M:%S')}] {what} {json.dumps(detail, ensure_ascii=False)}", flush=True)

    def mount_tmpfs(self) -> None:
        if os.geteuid() != 0:
            self.log("no_tmpfs", why="not root: the disk-full fault is skipped")
            return
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.args.disk_mb}m", "tmpfs", str(self.archive)],
            capture_output=True,
            text=True,
        )
        self.tmpfs = result.returncode == 0
        self.log("tmpfs" if self.tmpfs else "no_tmpfs", size_mb=self.args.disk_mb, error=result.stderr.strip())

    def start_server(self) -> None:
        self.server = subprocess.Popen(
            [sys.executable, str(REPO / "benchmarks" / "feedserver.py"), "--feeds", str(self.args.feeds), "--warm"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.server.stdout is not None
        self.base = re.search(r"http://[\d.:]+", self.server.stdout.readline()).group(0)  # type: ignore[union-attr]

    def write_config(self, feeds: list[int], path: Path, client: str | None = None) -> None:
        interval = self.args.interval
        header = f"\n    headers: {{X-Soak-Client: {client}}}" if client else ""
        lines = "".join(f"  - url: {self.base}/feed/{i}.xml\n    category: c{i % 10}{header}\n" for i in sorted(feeds))
        path.write_text(
            f"settings:\n  archive_dir: {self.archive}\n  default_interval: {interval}s\n"
            f"  min_interval: {interval // 2}s\n  max_interval: {interval * 4}s\n"
            "  publish: false\n  adaptive_interval: false\n  per_host_delay: 0\n  per_host_concurrency: 16\n"
            f"  request_timeout: 10s\n  shutdown_grace: 10s\n  serve_port: {self.port}\n"
            "categories:\n" + "".join(f"  c{i}: {{}}\n" for i in range(10)) + "feeds:\n" + lines,
            encoding="utf-8",
        )

    def start_daemon(self) -> None:
        self.incarnation += 1
        self.aggregator = [sys.executable, "-m", "aggregator", "--config", str(self.config)]
        log_file = (self.work / f"daemon-{self.incarnation}.log").open("wb")
        self.daemon = subprocess.Popen(
            [*self.aggregator, "daemon", "--serve", "--log-format", "json"],
            cwd=REPO,
            stderr=log_file,
            stdout=log_file,
        )
        self.log("daemon_started", pid=self.daemon.pid, incarnation=self.incarnation)

    def control(self, path: str, method: str = "POST") -> dict[str, object]:
        request = urllib.request.Request(f"{self.base}{path}", method=method)
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    # --- faults -------------------------------------------------------------------------------------

    def inject_feed_faults(self) -> None:
        kind = self.rng.choice(FAULTS)
        chosen = self.rng.sample(range(self.args.feeds), max(1, self.args.feeds // 50))
        self.control(f"/_control/faults?kind={kind}&feeds={','.join(map(str, chosen))}")
        self.failing.append((time.time() + self.rng.uniform(60, 240), chosen))
        self.log("feed_fault", kind=kind, feeds=len(chosen))

    def clear_due_faults(self, everything: bool = False) -> None:
        keep = []
        for until, chosen in self.failing:
            if everything or time.time() >= until:
                self.control(f"/_control/faults?kind=ok&feeds={','.join(map(str, chosen))}")
                self.log("feed_fault_cleared", feeds=len(chosen))
            else:
                keep.append((until, chosen))
        self.failing = keep

    def reload(self) -> None:
        removed = self.rng.sample(sorted(self.configured), min(20, len(self.configured)))
        added = self.rng.sample(sorted(self.held_back), min(20, len(self.held_back)))
        self.configured = (self.configured - set(removed)) | set(added)
        self.held_back = (self.held_back - set(added)) | set(removed)
        self.write_config(sorted(self.configured), self.config)
        if self.daemon is not None:
            self.daemon.send_signal(signal.SIGHUP)
        self.log("reload", removed=len(removed), added=len(added), feeds=len(self.configured))

    def kill_daemon(self) -> None:
        assert self.daemon is not None
        self.daemon.send_signal(signal.SIGKILL)
        self.daemon.wait()
        for pid in descendants(self.daemon.pid):  # orphaned parser processes die with their pipe; be sure
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        self.kills.append(time.time())
        self.log("daemon_killed", pid=self.daemon.pid)
        time.sleep(2)
        self.start_daemon()

    def kill_parser(self) -> None:
        assert self.daemon is not None
        workers = [p for p in descendants(self.daemon.pid) if p not in self._direct_children()]
        if not workers:
            self.log("parser_kill_skipped", why="no parser process running")
            return
        victim = self.rng.choice(workers)
        with contextlib.suppress(OSError):
            os.kill(victim, signal.SIGKILL)
        self.log("parser_killed", pid=victim)

    def _direct_children(self) -> set[int]:
        assert self.daemon is not None
        return set(children(self.daemon.pid))

    def fill_disk(self) -> None:
        filler = self.archive / "filler"
        written = 0
        with contextlib.suppress(OSError), filler.open("wb") as out:
            chunk = b"\0" * (1 << 20)
            while True:
                out.write(chunk)
                out.flush()
                written += len(chunk)
        self.disk_full = (time.time(), float("inf"))
        self.log("disk_full", filler_mb=written >> 20)

    def free_disk(self) -> None:
        with contextlib.suppress(OSError):
            (self.archive / "filler").unlink()
        assert self.disk_full is not None
        self.disk_full = (self.disk_full[0], time.time())
        self.log("disk_freed")

    def fetch_now_beside(self) -> None:
        chosen = self.rng.sample(sorted(self.configured), min(20, len(self.configured)))
        side = self.work / "fetch-now.yaml"
        self.write_config(sorted(self.configured), side, client="fetch-now")
        urls = [f"{self.base}/feed/{i}.xml" for i in chosen]
        result = subprocess.run(
            [sys.executable, "-m", "aggregator", "--config", str(side), "fetch-now", "--no-progress", *urls],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        self.log("fetch_now", feeds=len(urls), exit=result.returncode, last=result.stdout.strip()[-120:])

    # --- observation --------------------------------------------------------------------------------

    def observe(self) -> None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=10) as response:
                code, body = response.status, response.read()
        except urllib.error.HTTPError as error:
            code, body = error.code, error.read()
        except OSError:
            return  # not serving (starting after a kill)
        with contextlib.suppress(ValueError):
            self.health.append((time.time(), code, str(json.loads(body).get("status"))))
        if self.daemon is not None:
            self.memory.append((time.time(), tree_rss(self.daemon.pid)))

    # --- the run ------------------------------------------------------------------------------------

    def run(self) -> int:
        args = self.args
        self.mount_tmpfs()
        self.start_server()
        everyone = set(range(args.feeds))
        self.held_back = set(self.rng.sample(sorted(everyone), args.feeds // 20))
        self.configured = everyone - self.held_back
        self.config = self.work / "feeds.yaml"
        self.write_config(sorted(self.configured), self.config)
        self.failing: list[tuple[float, list[int]]] = []
        self.start_daemon()
        started = time.time()
        end = started + args.minutes * 60
        # Each fault on its own clock: (next time, period in seconds, action).
        clocks = [
            [started + 30, 30, lambda: self.log("mutate", **self.control("/_control/mutate?fraction=0.05&add=2"))],
            [started + 45, 45, lambda: self.log("edit", **self.control("/_control/edit?fraction=0.03"))],
            [started + 60, 75, self.inject_feed_faults],
            [started + 120, 240, self.reload],
            [started + 200, 420, self.kill_daemon],
            [started + 150, 300, self.kill_parser],
            [started + 100, 360, self.fetch_now_beside],
        ]
        disk_at = started + args.minutes * 60 * 0.4
        while time.time() < end:
            time.sleep(3)
            self.observe()
            self.clear_due_faults()
            for clock in clocks:
                if time.time() >= clock[0]:
                    clock[2]()  # type: ignore[operator]
                    clock[0] += clock[1] * self.rng.uniform(0.7, 1.3)  # type: ignore[operator]
            if self.tmpfs and self.disk_full is None and time.time() >= disk_at:
                self.fill_disk()
            full = self.disk_full
            if full is not None and full[1] == float("inf") and time.time() - full[0] >= args.disk_full_seconds:
                self.free_disk()
        return self.settle_and_report(started)

    def settle_and_report(self, started: float) -> int:
        self.clear_due_faults(everything=True)
        if self.disk_full is not None and self.disk_full[1] == float("inf"):
            self.free_disk()
        self.configured |= self.held_back
        self.held_back = set()
        self.write_config(sorted(self.configured), self.config)
        assert self.daemon is not None
        self.daemon.send_signal(signal.SIGTERM)
        stop_started = time.time()
        try:
            code = self.daemon.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            code = -9
        stopped = time.time()
        stop_seconds = stopped - stop_started
        self.log("daemon_stopped", exit=code, seconds=round(stop_seconds, 1))
        final = subprocess.run(
            [sys.executable, "-m", "aggregator", "--config", str(self.config), "fetch-now", "--no-progress"],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        self.log("final_fetch_now", exit=final.returncode, summary=final.stdout.strip().splitlines()[:1])
        record = self.control("/_control/record", method="GET")
        (self.work / "served.json").write_text(json.dumps(record))
        if self.tmpfs:  # the tmpfs goes when the soak ends: keep the archive for a look afterwards
            with (
                sqlite3.connect(self.archive / "aggregator.db") as source,
                sqlite3.connect(self.work / "aggregator.db") as copy,
            ):
                source.backup(copy)
        self.server.terminate()
        self.server.wait()
        (self.work / "events.json").write_text(json.dumps(self.events, ensure_ascii=False, indent=1))
        return self.report(record, started, stopped, code, stop_seconds)

    # --- the verdict --------------------------------------------------------------------------------

    def report(self, record: dict[str, object], started: float, stopped: float, code: int, stop_s: float) -> int:
        args = self.args
        feeds: dict[str, dict[str, object]] = record["feeds"]  # type: ignore[assignment]
        requests: dict[str, list[list[object]]] = record["requests"]  # type: ignore[assignment]
        database = self.archive / "aggregator.db"
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
            rows = db.execute(
                "SELECT feed_url, key, count(*), max(revision), max(coalesce(summary, '') || coalesce(content, ''))"
                " FROM entries GROUP BY 1, 2"
            )
            archived: dict[tuple[int, str], tuple[int, int, str]] = {}
            for feed_url, key, count, revision, content in rows:
                index = int(feed_url.rsplit("/", 1)[1].removesuffix(".xml"))
                archived[(index, key)] = (count, revision, content)
            revision_rows = dict(db.execute("SELECT entry_id, count(*) FROM entry_revisions GROUP BY 1").fetchall())
            by_key = {
                (int(f.rsplit("/", 1)[1].removesuffix(".xml")), k): i
                for i, f, k in db.execute("SELECT id, feed_url, key FROM entries")
            }
            integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        expected = {
            (int(i), f"urn:bench:{i}:{n}")
            for i, spec in feeds.items()
            for n in range(int(spec["entries"]))  # type: ignore[call-overload]
        }
        missing = expected - set(archived)
        extra = set(archived) - expected
        duplicated = [k for k, v in archived.items() if v[0] > 1]
        stale, too_many_revisions, revision_mismatch, edited = [], [], [], 0
        for i, spec in feeds.items():
            served: dict[str, list[int]] = spec["served_versions"]  # type: ignore[assignment]
            for number, version in spec["edits"].items():  # type: ignore[attr-defined]
                key = (int(i), f"urn:bench:{i}:{number}")
                if key not in archived:
                    continue
                edited += 1
                if f"Edited: version {version}." not in archived[key][2]:
                    stale.append(key)
                if archived[key][1] > max(1, len(served.get(number, [0]))):
                    too_many_revisions.append(key)
        for key, (_count, revision, _content) in archived.items():
            if revision_rows.get(by_key[key], 0) != revision - 1:
                revision_mismatch.append(key)
        # Polls: gaps between two requests of a feed, the later one the daemon's, while the daemon ran.
        min_interval = args.interval // 2
        short, after_kill, gaps = [], [], []
        for i, feed_requests in requests.items():
            times = sorted(
                (float(t), str(client), int(status))  # type: ignore[call-overload]
                for t, client, status in feed_requests
                if float(t) < stopped  # type: ignore[arg-type]
            )
            for (t0, c0, s0), (t1, c1, s1) in itertools.pairwise(times):
                if c1 != "daemon" or (s0 == -1 and t1 - t0 < 2):
                    continue  # a connection the server dropped is retried once at once: the same poll
                gap = t1 - t0
                gaps.append(gap)
                if gap < min_interval - 1:
                    near_kill = any(t0 - args.interval <= k <= t1 for k in self.kills)
                    (after_kill if near_kill else short).append(
                        {"feed": i, "gap": round(gap, 1), "after": f"{c0} {s0}", "status": s1, "at": round(t1, 1)}
                    )
        daemon_polls = sum(1 for r in requests.values() for _t, c, _s in r if c == "daemon")  # type: ignore[misc]
        # /healthz against the disk-full window (a poll must fail to write before the daemon can know).
        degraded_in, degraded_out, ok_in = 0, 0, 0
        for t, _code, status in self.health:
            inside = self.disk_full is not None and self.disk_full[0] <= t <= self.disk_full[1] + 15
            if status == "degraded":
                degraded_in += inside
                degraded_out += not inside
            elif inside:
                ok_in += 1
        tracebacks = sum(p.read_text(errors="replace").count("Traceback") for p in self.work.glob("daemon-*.log"))
        warm = [m for m in self.memory if m[0] - started > 300]
        quarter = max(1, len(warm) // 4)
        first_q = statistics.median(m[1] for m in warm[:quarter]) / 2**20 if warm else float("nan")
        last_q = statistics.median(m[1] for m in warm[-quarter:]) / 2**20 if warm else float("nan")
        slope = (
            statistics.linear_regression([m[0] for m in warm], [m[1] / 2**20 for m in warm]).slope * 3600
            if len(warm) > 2
            else float("nan")
        )

        print()
        print(f"fault soak: {args.feeds} feeds, {args.minutes:g} min, interval {args.interval}s (min {min_interval}s)")
        counts: dict[str, int] = {}
        for event in self.events:
            counts[str(event["event"])] = counts.get(str(event["event"]), 0) + 1
        print("faults injected: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        print(
            f"entries: server {len(expected)}, archived {len(archived)}; missing {len(missing)}, not served "
            f"{len(extra)}, duplicated {len(duplicated)}; edited {edited}: stale {len(stale)}, more revisions than "
            f"versions served {len(too_many_revisions)}, revision rows off {len(revision_mismatch)}; "
            f"integrity_check {integrity}"
        )
        print(
            f"polls by the daemon: {daemon_polls}; shortest gap {min(gaps, default=float('nan')):.1f}s; under "
            f"min_interval: {len(short)} (plus {len(after_kill)} right after a SIGKILL restart)"
        )
        if self.disk_full is not None:
            print(
                f"/healthz while the disk was full ({self.disk_full[1] - self.disk_full[0]:.0f}s): degraded "
                f"{degraded_in} samples, ok {ok_in}; degraded outside it: {degraded_out} samples"
            )
        else:
            print("/healthz: no disk-full phase (not root, or no tmpfs)")
        print(
            f"memory after warm-up (process tree RSS): first quarter {first_q:.0f} MiB, last quarter {last_q:.0f} "
            f"MiB, slope {slope:+.1f} MiB/hour"
        )
        print(f"logs: {tracebacks} tracebacks; final stop: exit {code} after {stop_s:.1f}s; work folder {self.work}")
        problems = len(missing) + len(extra) + len(duplicated) + len(stale) + len(too_many_revisions)
        problems += len(revision_mismatch) + len(short) + tracebacks + (integrity != "ok")
        if self.disk_full is not None:
            problems += degraded_out + (degraded_in == 0)
        details = {"missing": sorted(missing)[:50], "stale": stale[:50], "short_gaps": short[:50]}
        (self.work / "report.json").write_text(json.dumps(details, indent=1, default=list))
        for gap in short[:5]:
            print(f"  short gap: {gap}")
        for key in stale[:5]:
            print(f"  stale: {key}")
        print("verdict: " + ("nothing lost, nothing duplicated, no crash" if not problems else f"{problems} problems"))
        return 1 if problems else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--interval", type=int, default=60, help="default_interval in seconds (min: half)")
    parser.add_argument("--disk-mb", type=int, default=400, help="size of the archive's tmpfs")
    parser.add_argument("--disk-full-seconds", type=float, default=90.0)
    parser.add_argument("--seed", type=int, default=1)
    soak = Soak(parser.parse_args())
    try:
        code = soak.run()
    finally:
        for process in (soak.daemon, getattr(soak, "server", None)):
            if process is not None and process.poll() is None:
                process.kill()
        if soak.tmpfs:
            subprocess.run(["umount", "-l", str(soak.archive)], check=False)
    sys.exit(code)


if __name__ == "__main__":
    main()
