"""The daemon as operators run it: a real subprocess (`python -m aggregator daemon`), real signals, a real
local HTTP server whose feeds change while it runs, and a real SQLite archive read beside it.

Waits have generous deadlines and never assert how fast something happened; what is asserted about time
are lower bounds the daemon promises (backoff, Retry-After, min_interval).
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from aggregator.core.schedule import adaptive_interval, schedule_at
from aggregator.daemon.runner import RESTART_SETTINGS
from tests.conftest import REPO
from tests.daemon.harness import (
    MIN_INTERVAL,
    FeedServer,
    Route,
    aggregator,
    daemon_config,
    entries,
    fresh_item,
    gaps,
    query,
    stop,
    wait_started,
    wait_until,
)
from tests.feeds import item

# --- behaviour ---------------------------------------------------------------------------------------


def test_daemon_archives_new_entries_backs_off_on_errors_and_honours_retry_after(
    tmp_path: Path, feed_server: FeedServer, start_daemon: Callable[..., subprocess.Popen[str]]
) -> None:
    feed_server.routes["/news"] = Route(items=[fresh_item(1), fresh_item(2)])
    feed_server.routes["/flaky"] = Route(status=500)
    feed_server.routes["/busy"] = Route(items=[fresh_item(1)], once=[(429, {"Retry-After": "3"})])
    news, flaky, busy = (feed_server.url(p) for p in ("/news", "/flaky", "/busy"))
    config = daemon_config(
        tmp_path,
        [{"url": news, "category": "news"}, {"url": flaky, "category": "news"}, {"url": busy, "category": "news"}],
    )
    daemon = start_daemon(config)

    wait_until(lambda: entries(config, news) == 2, daemon, "the first entries")
    feed_server.routes["/news"].items.insert(0, fresh_item(3))
    wait_until(lambda: entries(config, news) == 3, daemon, "an entry published while the daemon runs")

    # 500s: exponential backoff from min_interval (1s, 2s, ...), then recovery once the feed is fixed.
    wait_until(lambda: len(feed_server.hits("/flaky")) >= 3, daemon, "three polls of the failing feed")
    first, second = gaps(feed_server.hits("/flaky"))[:2]
    assert first >= 0.9 * MIN_INTERVAL
    assert second >= 1.9 * MIN_INTERVAL
    errors = query(config, "SELECT consecutive_errors, last_http_status FROM feeds WHERE url = ?", flaky)
    assert errors[0][0] >= 2 and errors[0][1] == 500
    feed_server.routes["/flaky"] = Route(items=[fresh_item(1)])
    wait_until(lambda: entries(config, flaky) == 1, daemon, "the failing feed to recover")
    assert query(config, "SELECT consecutive_errors, last_status FROM feeds WHERE url = ?", flaky) == [(0, "ok")]

    # 429 with Retry-After: 3 -> no request for at least three seconds.
    wait_until(lambda: entries(config, busy) == 1, daemon, "the rate-limited feed to be polled again")
    assert gaps(feed_server.hits("/busy"))[0] >= 2.9

    # Never more often than min_interval, whatever the feed.
    for path in ("/news", "/flaky", "/busy"):
        assert all(gap >= 0.9 * MIN_INTERVAL for gap in gaps(feed_server.hits(path))), path

    code, log = stop(daemon)
    assert code == 0, log
    assert f"{news}: ok, 1 new" in log  # one line per event, naming the feed and the outcome
    assert "Traceback" not in log


def test_sighup_adds_a_feed_and_an_invalid_config_keeps_the_old_one(
    tmp_path: Path, feed_server: FeedServer, start_daemon: Callable[..., subprocess.Popen[str]]
) -> None:
    feed_server.routes["/a"] = Route(items=[fresh_item(1)])
    feed_server.routes["/b"] = Route(items=[fresh_item(1), fresh_item(2)])
    a, b = feed_server.url("/a"), feed_server.url("/b")
    config = daemon_config(tmp_path, [{"url": a, "category": "news"}])
    daemon = start_daemon(config, "--log-format", "json")
    wait_until(lambda: entries(config, a) == 1, daemon, "the first feed")

    # The parser processes' memory cap is set when they start: a reload can only say it waits for a restart.
    feeds = [{"url": a, "category": "news"}, {"url": b, "category": "news"}]
    daemon_config(tmp_path, feeds, parse_memory_limit="768MB")
    daemon.send_signal(signal.SIGHUP)
    wait_until(lambda: entries(config, b) == 2, daemon, "the feed added by SIGHUP")

    config.write_text("settings: [this is not valid\n", encoding="utf-8")
    daemon.send_signal(signal.SIGHUP)
    polled = len(feed_server.hits("/b"))
    wait_until(lambda: len(feed_server.hits("/b")) > polled + 1, daemon, "polling to go on after a bad reload")

    code, log = stop(daemon)
    assert code == 0, log
    events = [json.loads(line) for line in log.splitlines()]  # --log-format json: one object per line
    failed = [e for e in events if e.get("event") == "reload_failed"]
    assert len(failed) == 1 and "YAML syntax error" in failed[0]["message"]
    assert any(e.get("event") == "config_reloaded" and "1 added" in e["message"] for e in events)
    assert any(e.get("feed") == b and e.get("outcome") == "ok" for e in events)
    partial = [e["message"] for e in events if e.get("event") == "reload_partial"]
    assert partial and partial[0].endswith("after a restart: parse_memory_limit"), partial


def test_the_settings_that_need_a_restart_are_the_ones_readme_names() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    sentence = readme[readme.index("Settings that need a restart") :].split(")", 1)[0]
    named = set(re.findall(r"`([a-z_]+)`", sentence))
    assert named == set(RESTART_SETTINGS), named ^ set(RESTART_SETTINGS)


def test_reloads_refuse_an_emptied_file_and_publish_a_category_move_at_once(
    tmp_path: Path, feed_server: FeedServer, start_daemon: Callable[..., subprocess.Popen[str]]
) -> None:
    feed_server.routes["/a"] = Route(items=[fresh_item(1)])
    a = feed_server.url("/a")
    categories = {"news": {"title": "News"}, "tech": {"title": "Tech"}}
    config = daemon_config(tmp_path, [{"url": a, "category": "news"}], categories=categories, publish=True)
    daemon = start_daemon(config, "--log-format", "json")
    news_feed = tmp_path / "archive" / "feeds" / "news.atom"
    wait_until(lambda: news_feed.is_file() and b"Item 1" in news_feed.read_bytes(), daemon, "the first publish")

    config.write_text("", encoding="utf-8")  # what an editor's half-written save looks like
    daemon.send_signal(signal.SIGHUP)
    polled = len(feed_server.hits("/a"))
    wait_until(lambda: len(feed_server.hits("/a")) > polled + 1, daemon, "polling to go on after an empty reload")

    daemon_config(tmp_path, [{"url": a, "category": "tech"}], categories=categories, publish=True)
    daemon.send_signal(signal.SIGHUP)
    tech_feed = tmp_path / "archive" / "feeds" / "tech.atom"
    # The feed gains nothing: the move alone has to reach the published feeds.
    wait_until(lambda: tech_feed.is_file() and b"Item 1" in tech_feed.read_bytes(), daemon, "the move published")
    assert b"Item 1" not in news_feed.read_bytes()

    code, log = stop(daemon)
    assert code == 0, log
    events = [json.loads(line) for line in log.splitlines()]
    assert any(e.get("event") == "reload_failed" and "lists no feeds" in e["message"] for e in events), log


def reload_and_expect_a_second_poll(
    daemon: subprocess.Popen[str],
    feed_server: FeedServer,
    path: str,
    directory: Path,
    feeds: list[dict[str, Any]],
    **settings: Any,
) -> None:
    """Rewrite feeds.yaml, send SIGHUP, wait for the feed's second poll, and stop the daemon cleanly."""
    daemon_config(directory, feeds, **settings)
    daemon.send_signal(signal.SIGHUP)
    wait_until(lambda: len(feed_server.hits(path)) >= 2, daemon, f"a second poll of {path} after the reload")
    code, log = stop(daemon)
    assert code == 0, log


def test_a_shorter_interval_applies_from_the_last_poll_after_a_reload(
    tmp_path: Path, feed_server: FeedServer, start_daemon: Callable[..., subprocess.Popen[str]]
) -> None:
    feed_server.routes["/a"] = Route(items=[fresh_item(1)])
    a = feed_server.url("/a")
    hourly = daemon_config(tmp_path, [{"url": a, "category": "news", "interval": "1h"}], max_interval="2h")
    subprocess.run(aggregator(hourly, "fetch-now"), cwd=REPO, check=True, capture_output=True)  # due in an hour
    daemon = start_daemon(hourly, "--log-format", "json")
    wait_started(hourly, daemon)
    time.sleep(1)
    assert len(feed_server.hits("/a")) == 1
    # Not an hour after the first poll: a couple of seconds after it.
    feeds = [{"url": a, "category": "news", "interval": "2s"}]
    reload_and_expect_a_second_poll(daemon, feed_server, "/a", tmp_path, feeds, max_interval="2h")


def test_status_shows_the_real_next_poll_and_schedule_settings_apply_at_once(
    tmp_path: Path, feed_server: FeedServer, start_daemon: Callable[..., subprocess.Popen[str]]
) -> None:
    # Posts ten days apart: the adaptive interval waits the whole max_interval, far beyond the 1 s interval.
    old = [item(n, pubDate=format_datetime(datetime.now(UTC) - timedelta(days=10 * n))) for n in (1, 2)]
    feed_server.routes["/quiet"] = Route(items=old)
    url = feed_server.url("/quiet")
    config = daemon_config(tmp_path, [{"url": url, "category": "news"}], max_interval="1h", adaptive_interval=True)
    daemon = start_daemon(config)

    def next_due() -> datetime | None:
        if not (tmp_path / "archive" / "aggregator.db").is_file():
            return None
        try:
            with sqlite3.connect(tmp_path / "archive" / "aggregator.db") as db:
                row = db.execute("SELECT next_due_at FROM feeds WHERE url = ?", (url,)).fetchone()
        except sqlite3.OperationalError:  # the daemon is still creating the archive
            return None
        return datetime.fromisoformat(row[0]) if row and row[0] else None

    later = datetime.now(UTC) + timedelta(minutes=30)
    wait_until(lambda: (due := next_due()) is not None and due > later, daemon, "the scheduler's next run stored")
    assert len(feed_server.hits("/quiet")) == 1
    # Without the adaptive interval the feed is due every second again, at once, not in an hour.
    feeds = [{"url": url, "category": "news"}]
    reload_and_expect_a_second_poll(
        daemon, feed_server, "/quiet", tmp_path, feeds, max_interval="1h", adaptive_interval=False
    )


def test_sigterm_during_a_slow_update_leaves_an_intact_archive_that_fetch_now_completes(
    tmp_path: Path, feed_server: FeedServer, start_daemon: Callable[..., subprocess.Popen[str]]
) -> None:
    feed_server.routes["/quick"] = Route(items=[fresh_item(1)])
    feed_server.routes["/slow"] = Route(items=[fresh_item(1), fresh_item(2)], delay=4)
    quick, slow = feed_server.url("/quick"), feed_server.url("/slow")
    config = daemon_config(
        tmp_path, [{"url": quick, "category": "news"}, {"url": slow, "category": "news"}], shutdown_grace="1s"
    )
    daemon = start_daemon(config)
    wait_until(lambda: bool(feed_server.hits("/slow")) and entries(config, quick) == 1, daemon, "a slow poll")

    code, log = stop(daemon)  # the slow response needs 4s; the grace period is 1s
    assert code == 0, log
    assert "grace period over" in log
    database = config.parent / "archive" / "aggregator.db"
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    feed_server.routes["/slow"].delay = 0
    done = subprocess.run(aggregator(config, "fetch-now"), cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert entries(config, slow) == 2 and entries(config, quick) == 1


def test_a_second_signal_exits_at_once(
    tmp_path: Path, feed_server: FeedServer, start_daemon: Callable[..., subprocess.Popen[str]]
) -> None:
    feed_server.routes["/slow"] = Route(items=[fresh_item(1)], delay=8)
    config = daemon_config(tmp_path, [{"url": feed_server.url("/slow"), "category": "news"}])
    daemon = start_daemon(config)
    wait_until(lambda: bool(feed_server.hits("/slow")), daemon, "a slow poll")
    daemon.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    code, log = stop(daemon, signal.SIGINT)
    assert code == 128 + signal.SIGINT, log
    assert "exiting now" in log


def test_a_second_daemon_refuses_to_start_while_fetch_now_works_beside_the_first(
    tmp_path: Path, feed_server: FeedServer, start_daemon: Callable[..., subprocess.Popen[str]]
) -> None:
    feed_server.routes["/a"] = Route(items=[fresh_item(1)])
    config = daemon_config(tmp_path, [{"url": feed_server.url("/a"), "category": "news"}])
    first = start_daemon(config)
    wait_until(lambda: entries(config, feed_server.url("/a")) == 1, first, "the first daemon to poll")

    second = subprocess.run(aggregator(config, "daemon"), cwd=REPO, capture_output=True, text=True, timeout=60)
    assert second.returncode == 1
    assert second.stderr.count("\n") == 1 and "already running" in second.stderr, second.stderr

    beside = subprocess.run(aggregator(config, "fetch-now"), cwd=REPO, capture_output=True, text=True, timeout=60)
    assert beside.returncode == 0, beside.stderr
    code, log = stop(first)
    assert code == 0, log


def test_a_gone_feed_warns_once_stops_and_comes_back_when_named_and_reloaded(
    tmp_path: Path, feed_server: FeedServer, start_daemon: Callable[..., subprocess.Popen[str]]
) -> None:
    feed_server.routes["/a"] = Route(items=[fresh_item(1)])
    feed_server.routes["/back"] = Route(items=[fresh_item(1), fresh_item(2)], once=[(410, {})])
    a, back = feed_server.url("/a"), feed_server.url("/back")
    config = daemon_config(tmp_path, [{"url": a, "category": "news"}, {"url": back, "category": "news"}])
    daemon = start_daemon(config, "--log-format", "json")
    wait_until(lambda: query(config, "SELECT gone FROM feeds WHERE url = ?", back) == [(1,)], daemon, "the 410")
    polled = len(feed_server.hits("/a"))
    wait_until(lambda: len(feed_server.hits("/a")) > polled + 2, daemon, "other polls to go on")
    assert len(feed_server.hits("/back")) == 1

    revived = subprocess.run(aggregator(config, "fetch-now", back), cwd=REPO, capture_output=True, text=True)
    assert revived.returncode == 0 and "2 new entries" in revived.stdout, revived.stderr
    daemon.send_signal(signal.SIGHUP)
    wait_until(lambda: len(feed_server.hits("/back")) >= 3, daemon, "the revived feed polled by the daemon")

    code, log = stop(daemon)
    assert code == 0, log
    events = [json.loads(line) for line in log.splitlines()]
    about_back = [e for e in events if e.get("feed") == back and e["level"] == "warning"]
    assert len(about_back) == 1 and "HTTP 410 Gone" in about_back[0]["message"]


def test_serve_exposes_healthz_and_metrics(
    tmp_path: Path, feed_server: FeedServer, start_daemon: Callable[..., subprocess.Popen[str]]
) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    feed_server.routes["/a"] = Route(items=[fresh_item(1)])
    feed_server.routes["/gone"] = Route(status=500)
    a = feed_server.url("/a")
    config = daemon_config(
        tmp_path,
        [{"url": a, "category": "news"}, {"url": feed_server.url("/gone"), "category": "news"}],
        serve_port=port,
    )
    daemon = start_daemon(config, "--serve")
    wait_until(lambda: entries(config, a) == 1 and bool(feed_server.hits("/gone")), daemon, "both feeds polled")
    time.sleep(0.5)

    def get(path: str) -> tuple[str, str]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.headers["Content-Type"], response.read().decode()

    kind, body = get("/healthz")
    health = json.loads(body)
    assert kind == "application/json" and health["status"] == "ok"
    assert health["summary"]["in_error"] == 1 and {f["url"] for f in health["feeds"]} >= {a}
    kind, text = get("/metrics")
    assert kind.startswith("text/plain; version=0.0.4")
    assert 'aggregator_polls_total{result="ok"}' in text and "aggregator_feeds_in_error 1.0" in text
    assert 'aggregator_update_duration_seconds_bucket{le="+Inf"}' in text
    code, log = stop(daemon)
    assert code == 0, log


# --- the pure scheduling decisions -------------------------------------------------------------------

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_adaptive_interval_follows_posting_frequency_within_bounds() -> None:
    hourly = [NOW - timedelta(hours=h) for h in range(10)]
    assert adaptive_interval(hourly, NOW, min_interval=300, max_interval=86400) == 1800
    every_minute = [NOW - timedelta(minutes=m) for m in range(10)]
    assert adaptive_interval(every_minute, NOW, min_interval=300, max_interval=86400) == 300
    gone_quiet = [NOW - timedelta(days=30, minutes=m) for m in range(10)]
    assert adaptive_interval(gone_quiet, NOW, min_interval=300, max_interval=86400) == 86400
    assert adaptive_interval([], NOW, min_interval=300, max_interval=86400) is None


def test_schedule_at_is_the_latest_constraint_and_jitter_only_delays() -> None:
    due = NOW + timedelta(minutes=10)
    assert schedule_at(now=NOW, next_due=due, last_fetched=NOW, min_interval=60) == due
    assert schedule_at(now=NOW, next_due=due, last_fetched=NOW, min_interval=60, adaptive=3600) == NOW + timedelta(
        hours=1
    )
    # min_interval wins over an earlier stored due time (e.g. written by a fetch-now).
    assert schedule_at(
        now=NOW, next_due=NOW, last_fetched=NOW - timedelta(seconds=10), min_interval=60
    ) == NOW + timedelta(seconds=50)
    # Overdue after a restart: spread over the next `spread` seconds, never in the past.
    overdue = [
        schedule_at(
            now=NOW, next_due=NOW - timedelta(hours=1), last_fetched=None, min_interval=60, spread=300, jitter=j
        )
        for j in (0.0, 0.5, 0.99)
    ]
    assert overdue == [NOW, NOW + timedelta(seconds=150), NOW + timedelta(seconds=297)]
    late = schedule_at(now=NOW, next_due=due, last_fetched=NOW, min_interval=60, jitter=0.99)
    assert due < late <= due + timedelta(seconds=30)


def test_a_feed_removed_while_waiting_its_turn_is_polled_again_once_put_back(
    tmp_path: Path, feed_server: FeedServer, start_daemon: Callable[..., subprocess.Popen[str]]
) -> None:
    # One request at a time and a slow feed: the other feed spends most of its life waiting its turn.
    feed_server.routes["/slow"] = Route(items=[fresh_item(1)], delay=3.0)
    feed_server.routes["/v"] = Route(items=[fresh_item(1)])
    slow, victim = feed_server.url("/slow"), feed_server.url("/v")
    both = [{"url": slow, "category": "news"}, {"url": victim, "category": "news"}]
    config = daemon_config(tmp_path, both, concurrency=1)
    daemon = start_daemon(config, "--log-format", "json")
    wait_until(lambda: len(feed_server.hits("/v")) >= 1 and len(feed_server.hits("/slow")) >= 2, daemon, "polls")
    started = len(feed_server.hits("/slow"))
    wait_until(lambda: len(feed_server.hits("/slow")) > started, daemon, "the slow feed's next request")
    time.sleep(1.5)  # the other falls due meanwhile, and waits
    daemon_config(tmp_path, both[:1], concurrency=1)  # the victim is queued behind it now: removed
    daemon.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    daemon_config(tmp_path, both, concurrency=1)
    daemon.send_signal(signal.SIGHUP)
    polled = len(feed_server.hits("/v"))
    wait_until(lambda: len(feed_server.hits("/v")) > polled + 1, daemon, "the re-added feed's polls")
    code, log = stop(daemon)
    assert code == 0, log
