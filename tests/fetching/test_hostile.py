"""Hostile and broken input: bounded time and memory, a clear error on that feed, the others unaffected,
nothing unsafe stored. One case per family; each heavy case kept small enough for a fast suite."""

from __future__ import annotations

import gzip
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pytest_httpserver import HTTPServer

from aggregator.core.models import Config
from tests.conftest import run_update, write_config
from tests.feeds import billion_laughs, item, quadratic_blowup, rss
from tests.rawserver import raw_server

GOOD = rss([item(1)])


def _drip(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: 100000\r\n\r\n")
    for _ in range(30):
        conn.sendall(b" ")
        time.sleep(0.5)


def _endless(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n\r\n<rss>")
    block = b"<x>" * 20000
    for _ in range(2000):
        conn.sendall(block)


def _truncated(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: 5000\r\n\r\n" + GOOD[:100])


def _bad_gzip(conn: socket.socket) -> None:
    body = b"\x1f\x8b\x08\x00garbage-not-deflate" * 3
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    conn.sendall(head + body)


def _truncated_gzip(conn: socket.socket) -> None:
    body = gzip.compress(GOOD)[:-30]
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    conn.sendall(head + body)


def _bad_chunk(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZZZ\r\nabc\r\n0\r\n\r\n")


def _huge_headers(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Junk: " + b"a" * 200_000 + b"\r\nContent-Length: 0\r\n\r\n")


def test_network_families_fail_cleanly_and_spare_the_other_feeds(
    httpserver: HTTPServer, make_config: Callable[..., Config]
) -> None:
    httpserver.expect_request("/good").respond_with_data(GOOD, content_type="application/rss+xml")
    servers = {"drip": _drip, "endless": _endless, "truncated": _truncated, "badgzip": _bad_gzip}
    servers |= {"truncgzip": _truncated_gzip, "headers": _huge_headers, "chunk": _bad_chunk}
    from contextlib import ExitStack

    with ExitStack() as stack:
        urls = {name: stack.enter_context(raw_server(fn)) + f"/{name}" for name, fn in servers.items()}
        config = make_config(
            [{"url": httpserver.url_for("/good"), "category": "news"}]
            + [{"url": url, "category": "news"} for url in urls.values()],
            request_timeout="3s",
            max_body_bytes="2MB",
        )
        summary = run_update(config)
    errors = {o.url.rsplit("/", 1)[-1]: o.error for o in summary.outcomes}
    assert errors["good"] == ""
    assert errors["drip"] == "timed out after 3s (the whole request, body included)"
    assert errors["endless"] == "body larger than the 2 MiB limit (max_body_bytes)"
    assert errors["truncated"].startswith("broken response")
    assert errors["badgzip"].startswith("corrupt gzip body")
    assert errors["truncgzip"] in ("truncated gzip body", "empty or truncated gzip body") or errors[
        "truncgzip"
    ].startswith("broken response")
    assert errors["headers"].startswith("broken response")
    assert errors["chunk"] == "broken response: illegal chunk header: 'ZZZZ\\r\\n'"  # no Python repr
    assert all("\n" not in e for e in errors.values())


def _gzip_members(*parts: bytes, trailer: bytes = b"") -> Callable[[socket.socket], None]:
    """Serve `parts` as concatenated gzip members, chunked in small pieces so members straddle reads."""
    body = b"".join(gzip.compress(part) for part in parts) + trailer

    def respond(conn: socket.socket) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Encoding: gzip\r\n"
        conn.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
        for start in range(0, len(body), 7):
            piece = body[start : start + 7]
            conn.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        conn.sendall(b"0\r\n\r\n")

    return respond


def test_concatenated_gzip_members_join_and_stay_bounded(make_config: Callable[..., Config]) -> None:
    half = len(GOOD) // 2
    servers = {
        "two": _gzip_members(GOOD[:half], GOOD[half:]),
        "empty": _gzip_members(GOOD, b""),
        "padded": _gzip_members(GOOD, trailer=b"\0\0\0 trailing junk"),
        "many": _gzip_members(*[b" " * 300_000] * 8, GOOD),
    }
    from contextlib import ExitStack

    with ExitStack() as stack:
        urls = {name: stack.enter_context(raw_server(fn)) + f"/{name}" for name, fn in servers.items()}
        config = make_config(
            [{"url": url, "category": "news"} for url in urls.values()], request_timeout="10s", max_body_bytes="1MB"
        )
        summary = run_update(config)
    outcomes = {o.url.rsplit("/", 1)[-1]: o for o in summary.outcomes}
    for name in ("two", "empty", "padded"):
        assert (outcomes[name].error, outcomes[name].new) == ("", 1), name
    assert outcomes["many"].error == "body larger than the 1 MiB limit (max_body_bytes)"


def test_gzip_members_in_one_read_are_joined_once_and_any_chunking_decodes_alike() -> None:
    import zlib

    import pytest

    from aggregator.fetching.client import BoundedDecoder, _BodyTooLargeError

    decoder = BoundedDecoder("gzip", 1024)
    assert decoder.feed(gzip.compress(b"<rss>") + gzip.compress(b"") + gzip.compress(b"</rss>")) == b"<rss></rss>"
    decoder.finish()
    # Raw deflate (no zlib header) is told from zlib's even when the first read is one byte.
    document = b"<rss>" + b"x" * 500 + b"</rss>"
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    for body in (zlib.compress(document), raw.compress(document) + raw.flush()):
        for size in (1, 2, 5):
            decoder = BoundedDecoder("deflate", 1024)
            assert b"".join(decoder.feed(body[i : i + size]) for i in range(0, len(body), size)) == document
            decoder.finish()
    # Junk after the body is ignored, but not without end.
    decoder = BoundedDecoder("gzip", 1024)
    decoder.feed(gzip.compress(document) + b"\n")
    with pytest.raises(_BodyTooLargeError):
        for _ in range(100):
            decoder.feed(b"junk" * 100)


def test_document_families(httpserver: HTTPServer, make_config: Callable[..., Config]) -> None:
    laughs = billion_laughs()
    # The same entities behind a long comment: a DOCTYPE may follow any amount of prolog.
    laughs_late = laughs.replace(b"?><!DOCTYPE", b"?><!--" + b"x" * 5_000 + b"--><!DOCTYPE")
    blowup = quadratic_blowup(2_000)
    external = (
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY ext SYSTEM "file:///etc/passwd">]>'
        b'<rss version="2.0"><channel><title>t</title><item><guid>1</guid><title>&ext;</title></item></channel></rss>'
    )
    nested = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>' + b"<x>" * 50_000 + b"</channel></rss>"
    )
    many = rss([item(n, guid=f"n{n}") for n in range(10_000)])
    long_author = rss([item(1, author="a" * 40_000)])
    surrogate = GOOD.replace(b"Item 1", b"bad &#xD800; ref")
    dates = rss(
        [item(1, pubDate="Sat, 01 Jan 9999 00:00:00 +0000"), item(2, pubDate="Mon, 01 Jan 0001 00:00:00 +0000")]
    )
    garbage = os.urandom(4096)
    xss = rss(
        [
            item(
                1,
                title="<script>alert(1)</script>Title\x01\x02",
                link="javascript:alert(1)",
                description=(
                    '<form action="javascript:x"><img src=x onerror=alert(1)><a href="JaVaScRiPt&#58;x">y</a></form>'
                ),
            )
        ]
    )
    docs = {
        "laughs": laughs,
        "laughs_late": laughs_late,
        "blowup": blowup,
        "external": external,
        "nested": nested,
        "many": many,
        "author": long_author,
        "surrogate": surrogate,
        "dates": dates,
        "garbage": garbage,
        "xss": xss,
    }
    for name, body in docs.items():
        httpserver.expect_request(f"/{name}").respond_with_data(body, content_type="application/rss+xml")
    config = make_config([{"url": httpserver.url_for(f"/{name}"), "category": "news"} for name in docs])
    summary = run_update(config)
    outcomes = {o.url.rsplit("/", 1)[-1]: o for o in summary.outcomes}
    assert not [o for o in outcomes.values() if o.error.startswith(("internal error", "parser failed"))]
    assert outcomes["many"].new == 10_000
    assert outcomes["surrogate"].status == "ok"  # the bad reference is replaced, the feed still read
    for name in ("laughs", "laughs_late", "blowup", "external", "author"):
        assert outcomes[name].status == "ok", (name, outcomes[name].error)
    assert outcomes["garbage"].status == "error" and outcomes["garbage"].error.startswith("not a feed")
    with sqlite3.connect(config.settings.database_path) as db:
        longest = db.execute(
            "SELECT max(length(title) + length(summary) + length(content) + length(author)) FROM entries"
        )
        assert longest.fetchone()[0] < 100_000  # no entity expansion reached the archive
        assert "root:" not in "".join(r[0] for r in db.execute("SELECT title || summary FROM entries"))
        flags = dict(db.execute("SELECT key, date_flag FROM entries WHERE feed_url LIKE '%/dates'").fetchall())
        assert flags == {"id-1": "future", "id-2": "ancient"}
        title, link, summary_html = db.execute(
            "SELECT title, link, summary FROM entries WHERE feed_url LIKE '%/xss'"
        ).fetchone()
        # An RSS title is HTML only when it looks like it (feedparser's rule, with <script> not among
        # HTML's tags): this one is text, kept as such and escaped wherever it is shown.
        assert title == "<script>alert(1)</script>Title" and link == ""
        lowered = summary_html.lower()
        assert "javascript" not in lowered and "onerror" not in lowered and "<form" not in lowered
        (author,) = db.execute("SELECT author FROM entries WHERE feed_url LIKE '%/author'").fetchone()
        assert len(author) <= 1000


def test_redirects_may_not_reach_private_addresses(httpserver: HTTPServer, tmp_path: Path) -> None:
    other = socket.create_server(("127.0.0.1", 0))  # a loopback service the feed must not redirect into
    other_port = other.getsockname()[1]
    try:
        targets = {
            "other-port": f"http://127.0.0.1:{other_port}/admin",
            "metadata": "http://169.254.169.254/latest/meta-data/",
            "decimal": f"http://2130706433:{other_port}/",
            "hex": f"http://0x7f.0.0.1:{other_port}/",
            "file": "file:///etc/passwd",
            "private": "http://10.0.0.1/feed",
        }
        for name, target in targets.items():
            httpserver.expect_request(f"/{name}").respond_with_data("", status=302, headers={"Location": target})
        httpserver.expect_request("/same-origin").respond_with_data("", status=302, headers={"Location": "/good"})
        httpserver.expect_request("/good").respond_with_data(GOOD, content_type="application/rss+xml")
        feeds = [{"url": httpserver.url_for(f"/{n}"), "category": "news"} for n in [*targets, "same-origin"]]
        from aggregator.configuration.load import load_config

        config = load_config(write_config(tmp_path, feeds, publish=False))
        outcomes = {o.url.rsplit("/", 1)[-1]: o for o in run_update(config).outcomes}
        assert outcomes["same-origin"].status == "ok"
        for name in targets:
            assert outcomes[name].status == "error", name
            assert outcomes[name].error.startswith("refused"), outcomes[name].error
        assert "add '127.0.0.1:" in outcomes["other-port"].error

        allowed = load_config(
            write_config(
                tmp_path,
                [{"url": httpserver.url_for("/other-port"), "category": "news"}],
                publish=False,
                allow_hosts=[f"127.0.0.1:{other_port}"],
            )
        )
        outcome = run_update(allowed).outcomes[0]
        assert not outcome.error.startswith("refused")  # allowed: it was fetched (and failed as a non-HTTP peer)

        strict = load_config(
            write_config(tmp_path, [{"url": httpserver.url_for("/good"), "category": "news"}], strict_network=True)
        )
        assert run_update(strict).outcomes[0].error.startswith("refused")
    finally:
        other.close()


def _session_members(session: int) -> list[int]:
    """Live processes of a session, from /proc (zombies waiting for init to reap them do not count)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != "Z":  # fields: state, ppid, pgrp, session, ...
            members.append(int(entry.name))
    return members


def test_sigkill_mid_run_leaves_a_consistent_archive(tmp_path: Path) -> None:
    def slow(conn: socket.socket) -> None:
        time.sleep(0.3)
        body = rss([item(n, guid=f"{conn.fileno()}-{n}") for n in range(30)])
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)

    with raw_server(slow) as base:
        feeds = [{"url": f"{base}/f{n}", "category": "news"} for n in range(60)]
        path = write_config(tmp_path, feeds, publish=False, per_host_concurrency=4, concurrency=4, per_host_delay=0)
        command = [sys.executable, "-m", "aggregator", "--config", str(path), "fetch-now", "--no-progress"]
        # A session of its own: every process the run starts (fork server, parser processes) is in it.
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        database = tmp_path / "archive" / "aggregator.db"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if database.exists():
                with sqlite3.connect(database) as db:
                    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
                    if "entries" in tables and db.execute("SELECT count(*) FROM entries").fetchone()[0] > 0:
                        break
            time.sleep(0.1)
        process.send_signal(signal.SIGKILL)
        process.wait()
        # Its parser processes and fork server end with it rather than wait for work forever.
        deadline = time.monotonic() + 20
        while _session_members(process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _session_members(process.pid) == []
        with sqlite3.connect(database) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            partial = db.execute("SELECT count(*) FROM entries").fetchone()[0]
        assert 0 < partial < 60 * 30
        finished = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert finished.returncode == 0, finished.stdout + finished.stderr
        with sqlite3.connect(database) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            # Every entry exactly once: the ids embed the connection, so count per feed instead.
            per_feed = db.execute("SELECT feed_url, count(*) FROM entries GROUP BY feed_url").fetchall()
        assert len(per_feed) == 60, finished.stdout + finished.stderr
        assert {count for _url, count in per_feed} <= {30, 60}


def test_the_address_actually_connected_to_is_checked(httpserver: HTTPServer) -> None:
    """Against DNS rebinding: a name checked as public but connected as private is caught on the peer
    address of the real connection."""
    import asyncio

    import httpx

    from aggregator.fetching.addresses import peer_refusal
    from aggregator.fetching.client import _peer_address

    httpserver.expect_request("/f").respond_with_data(GOOD)

    async def peer() -> str | None:
        async with httpx.AsyncClient() as client, client.stream("GET", httpserver.url_for("/f")) as response:
            return _peer_address(response)

    address = asyncio.run(peer())
    assert address == "127.0.0.1"
    assert peer_refusal("http://rebound.example/feed", address) == (
        "refused http://rebound.example/feed: the connection went to non-public address 127.0.0.1"
    )
    assert peer_refusal("http://public.example/feed", "93.184.215.14") is None


def test_unparseable_urls_lose_the_link_not_the_feed(
    httpserver: HTTPServer, make_config: Callable[..., Config], capfd: object
) -> None:
    # urllib raises on a broken IPv6 host ("http://[oops"): one such link once failed the whole feed,
    # and one in an href printed a traceback from inside the sanitiser.
    body = rss(
        [
            item(1, link="http://[oops/1", description='<p><a href="//[bad/x">a</a> <img src="pic.png"></p>'),
            item(2),
        ]
    )
    httpserver.expect_request("/broken-urls.xml").respond_with_data(body, content_type="application/rss+xml")
    config = make_config([{"url": httpserver.url_for("/broken-urls.xml"), "category": "news"}])
    summary = run_update(config)
    assert summary.count("ok") == 1 and summary.new == 2, summary.outcomes
    with sqlite3.connect(config.settings.database_path) as db:
        link, summary_html = db.execute("SELECT link, summary FROM entries WHERE key = 'id-1'").fetchone()
    assert link == ""
    assert "[bad" not in summary_html and 'src="https://site.example/pic.png"' in summary_html
    assert "Traceback" not in capfd.readouterr().err  # type: ignore[attr-defined]


def test_a_parse_past_its_deadline_fails_alone(httpserver: HTTPServer, make_config: Callable[..., Config]) -> None:
    # Nesting this deep sends the document to feedparser, which takes seconds over it: the parser
    # processes are killed at the deadline, the document that was being parsed past parse_timeout is
    # named and skipped at once (not parsed again alone), and the feeds queued beside it are parsed
    # again on new processes.
    nested = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>' + b"<x>" * 400_000
    httpserver.expect_request("/nested.xml").respond_with_data(nested + b"</channel></rss>")
    feeds = [{"url": httpserver.url_for("/nested.xml"), "category": "news"}]
    for n in range(5):
        body = rss([item(i, guid=f"good-{n}-{i}") for i in range(3)])
        httpserver.expect_request(f"/good{n}.xml").respond_with_data(body, content_type="application/rss+xml")
        feeds.append({"url": httpserver.url_for(f"/good{n}.xml"), "category": "news"})
    config = make_config(feeds, parse_timeout="1s", parse_workers=2, concurrency=6, per_host_concurrency=6)
    summary = run_update(config)
    [failed] = summary.failed
    assert failed.url.endswith("/nested.xml")
    assert failed.error == "parsing took longer than 1s (parse_timeout); document skipped"
    assert summary.count("ok") == 5 and summary.new == 15


def test_defusing_finds_a_doctype_behind_any_prolog_and_a_person_field_behind_any_space() -> None:
    from aggregator.parsing.document import MAX_PERSON_FIELD, defuse

    late = billion_laughs().replace(b"?><!DOCTYPE", b"?><!-- " + b"x" * 5_000 + b" --><?pi x?>\n<!DOCTYPE")
    assert b"<!ENTITY" in late and b"<!ENTITY" not in defuse(late)
    # The subset ends where XML ends it: not at a "]>" inside an entity value, a comment or a PI.
    tricky = billion_laughs().replace(b"[", b'[<!ENTITY q "]>"><!-- ]> \' --><?pi ]> ?>', 1)
    assert b'"]>"' in tricky and b"<!ENTITY" not in defuse(tricky)
    assert defuse(tricky).startswith(defuse(billion_laughs())[:60])
    # A DOCTYPE-like text inside the document is text, not a DOCTYPE: left as it is.
    quoted = rss([item(1, description='<!DOCTYPE x [<!ENTITY a "b">]>')])
    assert defuse(quoted) == quoted
    # U+00A0 and U+3000 are white space to the text pattern, not to a bytes one: still cut.
    for space in ("\u00a0", "\u3000", " "):
        document = rss([item(1, author="a" * 40_000)]).replace(b"<author>", f"<author{space}>".encode())
        assert b"a" * (MAX_PERSON_FIELD + 1) not in defuse(document), repr(space)


def test_markup_in_an_rss_author_is_flattened_before_the_cut_and_unterminated_markup_is_left_alone() -> None:
    from aggregator.parsing.document import MAX_PERSON_FIELD, defuse

    # Markup splitting a long author into short runs of text no longer hides it from the cut.
    split = rss([item(1, author="x")]).replace(
        b"<author>x</author>", b"<author>" + b"a" * 900 + b"<b/>" * 50 + b"a" * 900 + b"</author>"
    )
    assert b"<b/>" not in defuse(split) and b"a" * (MAX_PERSON_FIELD + 1) not in defuse(split)
    # CDATA sections that never end (each one a lazy pattern would rescan to the end) stay as they are,
    # for the parser to call the document not well-formed.
    endless = rss([item(1, guid="x")]).replace(b"<guid>x</guid>", b"<guid><p>" + b"<![CDATA[" * 100_000 + b"</guid>")
    assert defuse(endless) == endless
