"""The core loop end to end: a real HTTP server on 127.0.0.1, real feedparser, a real SQLite file."""

from __future__ import annotations

import gzip
import shutil
import socket
import sqlite3
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator.cli.commands import main
from aggregator.configuration.load import load_config
from aggregator.core.models import Config
from aggregator.publishing.outputs import MARK_FILE, publish_outputs
from aggregator.store.archive import Archive
from tests.conftest import run_update, write_config
from tests.feeds import item, rss
from tests.rawserver import raw_server


def rows(config: Config, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with sqlite3.connect(config.settings.database_path) as db:
        return db.execute(sql, params).fetchall()


def test_archives_entries_and_second_run_is_all_304_and_writes_nothing(
    httpserver: HTTPServer, make_config: Callable[..., Config]
) -> None:
    body = rss([item(1), item(2), item(3)])
    seen_conditional: list[str | None] = []

    def handler(request: Request) -> Response:
        seen_conditional.append(request.headers.get("If-None-Match"))
        if request.headers.get("If-None-Match") == '"v1"':
            return Response(status=304, headers={"ETag": '"v1"'})
        return Response(body, content_type="application/rss+xml", headers={"ETag": '"v1"'})

    httpserver.expect_request("/feed.xml").respond_with_handler(handler)
    config = make_config([{"url": httpserver.url_for("/feed.xml"), "category": "news"}])
    first = run_update(config)
    assert [o.status for o in first.outcomes] == ["ok"]
    assert first.new == 3
    before = rows(config, "SELECT id, last_seen, changed_at FROM entries ORDER BY id")
    second = run_update(config)
    assert [o.status for o in second.outcomes] == ["not_modified"]
    assert second.new == 0 and second.updated == 0
    assert seen_conditional == [None, '"v1"']
    assert rows(config, "SELECT id, last_seen, changed_at FROM entries ORDER BY id") == before
    assert rows(config, "SELECT count(*) FROM entry_revisions") == [(0,)]
    assert rows(config, "SELECT last_status, etag, consecutive_errors FROM feeds") == [("not_modified", '"v1"', 0)]


def test_last_modified_is_sent_back(httpserver: HTTPServer, make_config: Callable[..., Config]) -> None:
    stamp = "Wed, 16 Mar 2022 08:54:16 GMT"
    got: list[str | None] = []

    def handler(request: Request) -> Response:
        got.append(request.headers.get("If-Modified-Since"))
        if request.headers.get("If-Modified-Since") == stamp:
            return Response(status=304)
        return Response(rss([item(1)]), content_type="application/rss+xml", headers={"Last-Modified": stamp})

    httpserver.expect_request("/f").respond_with_handler(handler)
    config = make_config([{"url": httpserver.url_for("/f"), "category": "news"}])
    run_update(config)
    assert run_update(config).outcomes[0].status == "not_modified"
    assert got == [None, stamp]


def test_same_body_without_validators_is_not_parsed_again(
    httpserver: HTTPServer, make_config: Callable[..., Config]
) -> None:
    httpserver.expect_request("/f").respond_with_data(rss([item(1)]), content_type="application/rss+xml")
    config = make_config([{"url": httpserver.url_for("/f"), "category": "news"}])
    assert run_update(config).outcomes[0].status == "ok"
    assert run_update(config).outcomes[0].status == "unchanged"


def test_edited_entry_keeps_its_previous_version_as_a_revision(
    httpserver: HTTPServer, make_config: Callable[..., Config]
) -> None:
    versions = [rss([item(1), item(2)]), rss([item(1, title="Item 1 (corrected)"), item(2)]), rss([item(2)])]
    httpserver.expect_request("/f").respond_with_handler(
        lambda request: Response(versions.pop(0), content_type="application/rss+xml")
    )
    config = make_config([{"url": httpserver.url_for("/f"), "category": "news"}])
    assert run_update(config).new == 2
    second = run_update(config)
    assert (second.new, second.updated) == (0, 1)
    assert rows(config, "SELECT title, revision FROM entries WHERE key = 'id-1'") == [("Item 1 (corrected)", 2)]
    assert rows(config, "SELECT title, revision FROM entry_revisions") == [("Item 1", 1)]
    third = run_update(config)  # the source dropped item 1: the archive keeps it
    assert (third.new, third.updated) == (0, 0)
    assert rows(config, "SELECT count(*) FROM entries") == [(2,)]


def test_one_failing_feed_does_not_stop_the_others(httpserver: HTTPServer, make_config: Callable[..., Config]) -> None:
    httpserver.expect_request("/ok").respond_with_data(rss([item(1)]), content_type="application/rss+xml")
    httpserver.expect_request("/broken").respond_with_data("oops", status=500)
    httpserver.expect_request("/html").respond_with_data(
        "<!DOCTYPE html><html><body>Not here</body></html>", content_type="text/html"
    )
    httpserver.expect_request("/empty").respond_with_data(b"", content_type="application/rss+xml")
    httpserver.expect_request("/bom-html").respond_with_data(
        b"\xef\xbb\xbf<!DOCTYPE html><html><body>Not here</body></html>", content_type="text/html"
    )
    httpserver.expect_request("/unasked-304").respond_with_data(b"", status=304)
    config = make_config(
        [
            {"url": httpserver.url_for("/bom-html"), "category": "news"},
            {"url": httpserver.url_for("/unasked-304"), "category": "news"},
            {"url": httpserver.url_for("/broken"), "category": "news"},
            {"url": httpserver.url_for("/ok"), "category": "news"},
            {"url": httpserver.url_for("/html"), "category": "news"},
            {"url": httpserver.url_for("/empty"), "category": "news"},
            {"url": "http://127.0.0.1:9/closed-port", "category": "news"},
        ]
    )
    summary = run_update(config)
    by_url = {o.url.rsplit("/", 1)[-1]: o for o in summary.outcomes}
    assert by_url["ok"].status == "ok" and by_url["ok"].new == 1
    assert by_url["broken"].error == "HTTP 500 INTERNAL SERVER ERROR"
    assert "not a feed: the server sent an HTML page" in by_url["html"].error
    assert "not a feed: the server sent an HTML page" in by_url["bom-html"].error
    # A 304 to a request that named no cached copy is no answer: never "not modified" forever.
    assert by_url["unasked-304"].error == "HTTP 304 Not Modified to a request that was not conditional"
    assert "empty body" in by_url["empty"].error
    assert by_url["closed-port"].error.startswith("connection failed")
    errors = dict(rows(config, "SELECT url, consecutive_errors FROM feeds WHERE last_status = 'error'"))
    assert len(errors) == 6 and set(errors.values()) == {1}
    run_update(config)
    assert set(
        dict(rows(config, "SELECT url, consecutive_errors FROM feeds WHERE last_status = 'error'")).values()
    ) == {2}


def test_permanent_redirect_moves_the_feed_temporary_does_not(
    httpserver: HTTPServer, make_config: Callable[..., Config]
) -> None:
    httpserver.expect_request("/old").respond_with_data("", status=301, headers={"Location": "/new"})
    httpserver.expect_request("/new").respond_with_data(rss([item(1)]), content_type="application/rss+xml")
    httpserver.expect_request("/temp").respond_with_data("", status=302, headers={"Location": "/new2"})
    httpserver.expect_request("/new2").respond_with_data(rss([item(2)]), content_type="application/rss+xml")
    config = make_config(
        [
            {"url": httpserver.url_for("/old"), "category": "news"},
            {"url": httpserver.url_for("/temp"), "category": "news"},
        ]
    )
    summary = run_update(config)
    assert {o.url: o.moved_to for o in summary.outcomes} == {
        httpserver.url_for("/old"): httpserver.url_for("/new"),
        httpserver.url_for("/temp"): None,
    }
    assert dict(rows(config, "SELECT url, fetch_url FROM feeds")) == {
        httpserver.url_for("/old"): httpserver.url_for("/new"),
        httpserver.url_for("/temp"): httpserver.url_for("/temp"),
    }
    # The entry keeps the identity of the configured URL: a move creates no duplicates.
    run_update(config)
    assert rows(config, "SELECT count(*) FROM entries") == [(2,)]


def test_a_permanent_redirect_to_an_address_that_fails_does_not_move_the_feed(
    httpserver: HTTPServer, make_config: Callable[..., Config]
) -> None:
    # Moving the feed to a URL that answers 404 (or is refused) would leave it asked there for good,
    # never again at its own address, which may be working again by the next poll.
    httpserver.expect_request("/flip").respond_with_data("", status=301, headers={"Location": "/missing"})
    httpserver.expect_request("/missing").respond_with_data("", status=404)
    config = make_config([{"url": httpserver.url_for("/flip"), "category": "news"}])
    [outcome] = run_update(config).outcomes
    assert (outcome.status, outcome.moved_to) == ("error", None)
    assert rows(config, "SELECT fetch_url FROM feeds") == [(httpserver.url_for("/flip"),)]
    httpserver.clear()
    httpserver.expect_request("/flip").respond_with_data(rss([item(1)]), content_type="application/rss+xml")
    [outcome] = run_update(config).outcomes
    assert (outcome.status, outcome.new) == ("ok", 1)


def test_redirect_loop_and_too_many_redirects(httpserver: HTTPServer, make_config: Callable[..., Config]) -> None:
    httpserver.expect_request("/a").respond_with_data("", status=302, headers={"Location": "/b"})
    httpserver.expect_request("/b").respond_with_data("", status=302, headers={"Location": "/a"})
    for n in range(10):
        httpserver.expect_request(f"/chain{n}").respond_with_data(
            "", status=307, headers={"Location": f"/chain{n + 1}"}
        )
    config = make_config(
        [
            {"url": httpserver.url_for("/a"), "category": "news"},
            {"url": httpserver.url_for("/chain0"), "category": "news"},
        ]
    )
    errors = sorted(o.error for o in run_update(config).outcomes)
    assert errors[0].startswith("redirect loop")
    assert errors[1] == "too many redirects (more than 5)"


def _answering(answer: bytes) -> Callable[[socket.socket], None]:
    def respond(conn: socket.socket) -> None:
        conn.sendall(answer)

    return respond


def test_a_redirect_to_an_unusable_location_fails_in_one_line(
    make_config: Callable[..., Config], caplog: pytest.LogCaptureFixture
) -> None:
    locations = ["http://[::1", "//[", "http://[zzzz]/", "http://127.0.0.1:99999/", "http://example.org:port/"]

    with ExitStack() as stack:
        urls = []
        for location in locations:
            answer = f"HTTP/1.1 301 Moved Permanently\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode()
            urls.append(stack.enter_context(raw_server(_answering(answer))) + "/feed")
        config = make_config([{"url": url, "category": "news"} for url in urls])
        outcomes = {o.url: o for o in run_update(config).outcomes}
    for url, location in zip(urls, locations, strict=True):
        assert outcomes[url].error == f"HTTP 301 redirect to an invalid Location: {location!r}"
    assert "Traceback" not in caplog.text and "unexpected failure" not in caplog.text
    assert rows(config, "SELECT DISTINCT fetch_url = url FROM feeds") == [(1,)]  # nothing moved


def test_gone_stops_polling_and_retry_after_is_recorded(
    httpserver: HTTPServer, make_config: Callable[..., Config]
) -> None:
    httpserver.expect_request("/gone").respond_with_data("", status=410)
    httpserver.expect_request("/busy").respond_with_data("", status=429, headers={"Retry-After": "3600"})
    config = make_config(
        [
            {"url": httpserver.url_for("/gone"), "category": "news"},
            {"url": httpserver.url_for("/busy"), "category": "news"},
        ]
    )
    summary = run_update(config)
    assert {o.status for o in summary.outcomes} == {"gone", "error"}
    busy = next(o for o in summary.outcomes if o.url.endswith("/busy"))
    assert busy.error == "HTTP 429 TOO MANY REQUESTS (Retry-After 3600s)"
    ((until, due),) = rows(config, "SELECT retry_after_until, next_due_at FROM feeds WHERE url LIKE '%busy'")
    assert until is not None and due >= until
    second = run_update(config)
    assert next(o for o in second.outcomes if o.url.endswith("/gone")).status == "skipped"
    assert len([r for r in httpserver.log if r[0].path == "/gone"]) == 1


def test_a_gone_feed_is_polled_again_only_when_named(httpserver: HTTPServer, tmp_path: Path) -> None:
    httpserver.expect_oneshot_request("/moved-back").respond_with_data("", status=410)
    httpserver.expect_request("/moved-back").respond_with_data(rss([item(1)]), content_type="application/rss+xml")
    url = httpserver.url_for("/moved-back")
    path = write_config(tmp_path, [{"url": url, "category": "news"}], publish=False)
    runner = CliRunner()
    assert runner.invoke(main, ["--config", str(path), "fetch-now"]).exit_code == 1  # 410: nothing fetched
    skipped = runner.invoke(main, ["--config", str(path), "fetch-now"])
    assert "gone (HTTP 410); to try it again: aggregator fetch-now URL" in skipped.output
    assert len(httpserver.log) == 1
    named = runner.invoke(main, ["--config", str(path), "fetch-now", url])
    assert named.exit_code == 0 and "1 new entries" in named.output
    config = load_config(path)
    assert rows(config, "SELECT gone, consecutive_errors FROM feeds") == [(0, 0)]
    again = runner.invoke(main, ["--config", str(path), "fetch-now"])  # an ordinary run polls it once more
    assert again.output.startswith(f"unchanged    {url}")
    assert len(httpserver.log) == 3


def test_the_next_poll_counts_from_the_answer_not_the_request(httpserver: HTTPServer, tmp_path: Path) -> None:
    def slow(_request: Request) -> Response:
        time.sleep(2)
        return Response(rss([item(1)]), content_type="application/rss+xml")

    httpserver.expect_request("/slow").respond_with_handler(slow)
    httpserver.expect_request("/slow-error").respond_with_handler(lambda _r: (time.sleep(2), Response("", 500))[1])
    config = load_config(
        write_config(
            tmp_path,
            [{"url": httpserver.url_for(p), "category": "news"} for p in ("/slow", "/slow-error")],
            publish=False,
            min_interval="1s",
            default_interval="1s",
        )
    )
    run_update(config)
    for url, fetched, due in rows(config, "SELECT url, last_fetched_at, next_due_at FROM feeds"):
        waited = datetime.fromisoformat(str(due)) - datetime.fromisoformat(str(fetched))
        assert waited >= timedelta(seconds=3), url  # two seconds answering, then the one-second interval


def test_an_absurd_retry_after_is_capped_at_a_week(httpserver: HTTPServer, make_config: Callable[..., Config]) -> None:
    for path, value in (("/forever", "99999999999999999999"), ("/year3000", "Wed, 01 Jan 3000 00:00:00 GMT")):
        httpserver.expect_request(path).respond_with_data("", status=503, headers={"Retry-After": value})
    config = make_config([{"url": httpserver.url_for(p), "category": "news"} for p in ("/forever", "/year3000")])
    summary = run_update(config)
    assert {o.error for o in summary.outcomes} == {"HTTP 503 SERVICE UNAVAILABLE (Retry-After 604800s)"}
    for until, due in rows(config, "SELECT retry_after_until, next_due_at FROM feeds"):
        wait = datetime.fromisoformat(until) - datetime.now(UTC)
        assert timedelta(days=6, hours=23) < wait <= timedelta(days=7) and due >= until


def test_absurd_numbers_from_a_feed_or_its_server_are_read_as_their_bound(
    httpserver: HTTPServer, make_config: Callable[..., Config]
) -> None:
    huge = "9" * 25
    enclosure = f'<enclosure url="https://site.example/a.mp3" type="audio/mpeg" length="{huge}"/>'
    httpserver.expect_request("/ttl").respond_with_data(
        rss([item(1)], extra=f"<ttl>{huge}</ttl>").replace(b"</item>", enclosure.encode() + b"</item>"),
        content_type="application/rss+xml",
    )
    httpserver.expect_request("/digits").respond_with_data(
        rss([item(2)], extra=f"<ttl>{'7' * 5000}</ttl>"), content_type="application/rss+xml"
    )
    # Leading zeros are no magnitude: this is an hour, not "too long to read".
    httpserver.expect_request("/padded").respond_with_data(
        rss([item(4)], extra=f"<ttl>{'0' * 30}60</ttl>"), content_type="application/rss+xml"
    )

    def max_age(request: Request) -> Response:
        headers = {"ETag": '"v1"', "Cache-Control": f"public, max-age={huge}"}
        if request.headers.get("If-None-Match") == '"v1"':
            return Response(status=304, headers=headers)
        return Response(rss([item(3)]), content_type="application/rss+xml", headers=headers)

    httpserver.expect_request("/max-age").respond_with_handler(max_age)
    names = ("/ttl", "/digits", "/max-age", "/padded")
    config = make_config([{"url": httpserver.url_for(p), "category": "news"} for p in names])
    for expected in ("ok", "not_modified"):
        summary = run_update(config)
        assert summary.storage_error == ""
        assert {o.url.rsplit("/", 1)[-1]: (o.status, o.error) for o in summary.outcomes} == {
            "ttl": ("ok" if expected == "ok" else "unchanged", ""),
            "digits": ("ok" if expected == "ok" else "unchanged", ""),
            "max-age": (expected, ""),
            "padded": ("ok" if expected == "ok" else "unchanged", ""),
        }
    year = 366 * 24 * 3600
    assert sorted(rows(config, "SELECT ttl_seconds, max_age_seconds FROM feeds"), key=str) == sorted(
        [(year, None), (year, None), (None, year), (3600, None)], key=str
    )
    assert rows(config, "SELECT enclosures FROM entries WHERE enclosures != '[]'") == [
        ('[{"url": "https://site.example/a.mp3", "type": "audio/mpeg", "length": 9007199254740991}]',)
    ]


def test_a_feed_the_archive_refuses_fails_alone(httpserver: HTTPServer, tmp_path: Path) -> None:
    edition = {"n": 1}
    httpserver.expect_request("/refused-entries").respond_with_handler(
        lambda _request: Response(
            rss([item(i) for i in range(1, edition["n"] + 1)]), content_type="application/rss+xml"
        )
    )

    def cached(request: Request) -> Response:
        if request.headers.get("If-None-Match") == '"v1"':
            return Response(status=304, headers={"ETag": '"v1"'})
        return Response(rss([item(1)]), content_type="application/rss+xml", headers={"ETag": '"v1"'})

    httpserver.expect_request("/refused-state").respond_with_handler(cached)
    httpserver.expect_request("/cached").respond_with_handler(cached)
    httpserver.expect_request("/growing").respond_with_handler(
        lambda _request: Response(
            rss([item(i) for i in range(1, edition["n"] + 2)]), content_type="application/rss+xml"
        )
    )
    names = ("refused-entries", "refused-state", "cached", "growing")
    path = write_config(tmp_path, [{"url": httpserver.url_for(f"/{n}"), "category": "news"} for n in names])
    config = load_config(path)
    run_update(config)
    # The archive itself refuses two feeds' rows from now on, as SQLite refuses a value it cannot hold.
    with sqlite3.connect(config.settings.database_path) as db:
        db.executescript(
            f"""
            CREATE TRIGGER refuse_entries BEFORE INSERT ON entries
            WHEN NEW.feed_url = '{httpserver.url_for("/refused-entries")}'
            BEGIN SELECT RAISE(ABORT, 'refused for the test'); END;
            CREATE TRIGGER refuse_state BEFORE UPDATE ON feeds
            WHEN NEW.url = '{httpserver.url_for("/refused-state")}' AND NEW.last_status = 'not_modified'
            BEGIN SELECT RAISE(ABORT, 'refused for the test'); END;
            """
        )
    edition["n"] = 2
    summary = run_update(config)
    outcomes = {o.url.rsplit("/", 1)[-1]: o for o in summary.outcomes}
    assert summary.storage_error == ""
    for name in ("refused-entries", "refused-state"):
        assert outcomes[name].status == "error"
        assert outcomes[name].error.endswith("the archive refused this feed's data: refused for the test")
    assert (outcomes["cached"].status, outcomes["growing"].status, outcomes["growing"].new) == ("not_modified", "ok", 1)
    # Each refusal is a failed poll, as `status` shows it: counted for backoff, the document fetched whole
    # next time.
    for name in ("refused-entries", "refused-state"):
        ((status, errors, due, error),) = rows(
            config,
            "SELECT last_status, consecutive_errors, next_due_at, last_error FROM feeds WHERE url = ?",
            (httpserver.url_for(f"/{name}"),),
        )
        assert (status, errors) == ("error", 1) and due > datetime.now(UTC).isoformat(), name
        assert error.endswith("refused for the test")
    result = CliRunner().invoke(main, ["--config", str(path), "fetch-now"])
    assert result.exit_code == 0, result.output


def test_body_size_limit_applies_to_the_decoded_body(
    httpserver: HTTPServer, make_config: Callable[..., Config]
) -> None:
    bomb = gzip.compress(b"<rss>" + b" " * (8 * 1024 * 1024))
    httpserver.expect_request("/bomb").respond_with_data(
        bomb, content_type="application/rss+xml", headers={"Content-Encoding": "gzip"}
    )
    small = gzip.compress(rss([item(1)]))
    httpserver.expect_request("/small").respond_with_data(
        small, content_type="application/rss+xml", headers={"Content-Encoding": "gzip"}
    )
    config = make_config(
        [
            {"url": httpserver.url_for("/bomb"), "category": "news"},
            {"url": httpserver.url_for("/small"), "category": "news"},
        ],
        max_body_bytes="1MB",
    )
    outcomes = {o.url.rsplit("/", 1)[-1]: o for o in run_update(config).outcomes}
    assert outcomes["bomb"].error == "body larger than the 1 MiB limit (max_body_bytes)"
    assert outcomes["small"].status == "ok"


def test_gbk_feed_with_lying_header_keeps_chinese_text(
    httpserver: HTTPServer, make_config: Callable[..., Config]
) -> None:
    title = "“四维”发力 确保征管改革见成效"
    declared = rss([item(1, title=title)], encoding="gbk")
    undeclared = declared.replace(b' encoding="gbk"', b"")
    httpserver.expect_request("/declared").respond_with_data(declared, content_type="application/xml")
    # GB2312 bytes served as UTF-8 with no XML declaration: must not become mojibake.
    httpserver.expect_request("/lying").respond_with_data(undeclared, content_type="text/xml; charset=utf-8")
    config = make_config(
        [
            {"url": httpserver.url_for("/declared"), "category": "news"},
            {"url": httpserver.url_for("/lying"), "category": "news"},
        ]
    )
    run_update(config)
    assert rows(config, "SELECT DISTINCT title FROM entries") == [(title,)]
    assert rows(config, "SELECT DISTINCT published FROM entries") == [("2022-03-16T08:01:16+08:00",)]


def test_charset_override(httpserver: HTTPServer, make_config: Callable[..., Config]) -> None:
    body = rss([item(1, title="繁體中文標題")], encoding="big5").replace(b' encoding="big5"', b' encoding="utf-8"')
    httpserver.expect_request("/big5").respond_with_data(body, content_type="application/xml; charset=utf-8")
    config = make_config([{"url": httpserver.url_for("/big5"), "category": "news", "charset": "big5"}])
    run_update(config)
    assert rows(config, "SELECT title FROM entries") == [("繁體中文標題",)]


def test_duplicate_ids_in_one_document_do_not_crash(httpserver: HTTPServer, make_config: Callable[..., Config]) -> None:
    body = rss([item(1), item(1, title="same id again"), item(2)])
    httpserver.expect_request("/dup").respond_with_data(body, content_type="application/rss+xml")
    config = make_config([{"url": httpserver.url_for("/dup"), "category": "news"}])
    summary = run_update(config)
    assert summary.outcomes[0].status == "ok" and summary.new == 2


def test_fetch_now_cli_summary_and_exit_codes(
    httpserver: HTTPServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    httpserver.expect_request("/ok").respond_with_data(rss([item(1), item(2)]), content_type="application/rss+xml")
    httpserver.expect_request("/missing").respond_with_data("nope", status=404)
    path = write_config(
        tmp_path,
        [
            {"url": httpserver.url_for("/ok"), "category": "news"},
            {"url": httpserver.url_for("/missing"), "category": "tech"},
        ],
        publish=False,
    )
    runner = CliRunner()
    result = runner.invoke(main, ["--config", str(path), "fetch-now"])
    assert result.exit_code == 0, result.output
    assert "Polled 2 feeds" in result.output
    assert "1 ok, 0 not modified, 1 failed" in result.output
    assert "2 new entries" in result.output
    assert f"{httpserver.url_for('/missing')}: HTTP 404 NOT FOUND" in result.output
    # Each feed is reported once by fetch-now itself (one line, or the progress bar), not again as a log
    # record that would land inside the progress bar.
    assert not [r for r in caplog.records if r.name.startswith("aggregator") and "/missing" in r.getMessage()]
    only_tech = runner.invoke(main, ["--config", str(path), "fetch-now", "--category", "tech"])
    assert only_tech.exit_code == 1  # nothing could be fetched
    assert "error: no feed could be fetched" in only_tech.output
    named = runner.invoke(main, ["--config", str(path), "fetch-now", httpserver.url_for("/ok")])
    assert named.exit_code == 0 and "Polled 1 feeds" in named.output
    unknown = runner.invoke(main, ["--config", str(path), "fetch-now", "--category", "nope"])
    assert unknown.exit_code == 2


def test_unwritable_archive_exits_1(httpserver: HTTPServer, tmp_path: Path) -> None:
    httpserver.expect_request("/ok").respond_with_data(rss([item(1)]), content_type="application/rss+xml")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the archive folder should be")
    path = write_config(tmp_path, [{"url": httpserver.url_for("/ok"), "category": "news"}], archive_dir="blocker/sub")
    result = CliRunner().invoke(main, ["--config", str(path), "fetch-now"])
    assert result.exit_code == 1
    assert "cannot open archive database" in result.output
    assert "Traceback" not in result.output


def test_archive_schema_is_readable(httpserver: HTTPServer, make_config: Callable[..., Config]) -> None:
    httpserver.expect_request("/f").respond_with_data(rss([item(1)]), content_type="application/rss+xml")
    config = make_config([{"url": httpserver.url_for("/f"), "category": "news"}])
    run_update(config)
    with Archive.open(config.settings.database_path) as archive:
        assert {"feeds", "entries", "entry_revisions", "entries_fts"} <= set(archive.db.table_names())
        assert archive.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        (entry,) = list(archive.entries())
        assert entry.published.isoformat() == "2022-03-16T08:01:16+08:00"
        hits = archive.db.execute("SELECT rowid FROM entries_fts WHERE entries_fts MATCH 'Body'").fetchall()
        assert len(hits) == 1


def test_per_host_politeness_queues_without_timing_out(
    httpserver: HTTPServer, make_config: Callable[..., Config]
) -> None:
    import time

    starts: list[float] = []

    def handler(request: Request) -> Response:
        starts.append(time.monotonic())
        return Response(rss([item(1)]), content_type="application/rss+xml")

    for n in range(6):
        httpserver.expect_request(f"/polite{n}").respond_with_handler(handler)
    config = make_config(
        [{"url": httpserver.url_for(f"/polite{n}"), "category": "news"} for n in range(6)],
        per_host_concurrency=1,
        per_host_delay="1s",
        request_timeout="2s",
    )
    summary = run_update(config)
    # Six requests one second apart take five seconds: queueing for the host is not request time.
    assert [o.status for o in summary.outcomes] == ["ok"] * 6
    gaps = [b - a for a, b in zip(sorted(starts), sorted(starts)[1:], strict=False)]
    assert min(gaps) >= 0.9


def test_title_override_names_the_feed(httpserver: HTTPServer, make_config: Callable[..., Config]) -> None:
    httpserver.expect_request("/t").respond_with_data(
        rss([item(1)], title="Own title"), content_type="application/rss+xml"
    )
    httpserver.expect_request("/u").respond_with_data(
        rss([item(1)], title="Own title"), content_type="application/rss+xml"
    )
    config = make_config(
        [
            {"url": httpserver.url_for("/t"), "category": "news", "title": "Operator's name"},
            {"url": httpserver.url_for("/u"), "category": "news"},
        ]
    )
    run_update(config)
    titles = dict(rows(config, "SELECT url, title FROM feeds"))
    assert titles == {httpserver.url_for("/t"): "Operator's name", httpserver.url_for("/u"): "Own title"}


def test_politeness_is_per_registrable_domain() -> None:
    from aggregator.fetching.domains import politeness_key

    assert politeness_key("https://feeds.bbci.co.uk/news/rss.xml") == "bbci.co.uk"
    assert politeness_key("https://www.bbci.co.uk/") == "bbci.co.uk"
    assert politeness_key("https://a.blogspot.com/feed") != politeness_key("https://b.blogspot.com/feed")
    assert politeness_key("http://127.0.0.1:8080/feed") == "127.0.0.1"
    assert politeness_key("http://localhost/feed") == "localhost"
    assert politeness_key("https://www.chinanews.com.cn/rss/finance.xml") == "chinanews.com.cn"


def test_entries_a_feed_still_carries_unchanged_are_not_normalised_again(
    httpserver: HTTPServer, make_config: Callable[..., Config]
) -> None:
    versions = [
        rss([item(1), item(2), item(3)]),
        # 1 as it was, 2 edited, 3 re-dated only, 4 new
        rss(
            [item(1), item(2, title="Item 2 (corrected)"), item(3, pubDate="Thu, 17 Mar 2022 09:00:00 +0800"), item(4)]
        ),
    ]
    httpserver.expect_request("/f").respond_with_handler(
        lambda request: Response(versions.pop(0), content_type="application/rss+xml")
    )
    config = make_config([{"url": httpserver.url_for("/f"), "category": "news"}])
    assert run_update(config).new == 3
    assert rows(config, "SELECT count(*) FROM entries WHERE raw_hash IS NULL") == [(0,)]
    # Proof that item 1 is recognised by its fingerprint rather than normalised and compared: what the
    # archive holds for it is left as it is (a normalised copy would differ and make a revision).
    with sqlite3.connect(config.settings.database_path) as db:
        db.execute("UPDATE entries SET summary = 'as stored' WHERE key = 'id-1'")
    second = run_update(config)
    assert (second.new, second.updated) == (1, 1)
    assert rows(config, "SELECT key, title, revision, summary FROM entries ORDER BY key") == [
        ("id-1", "Item 1", 1, "as stored"),
        ("id-2", "Item 2 (corrected)", 2, "<p>Body 2</p>"),
        ("id-3", "Item 3", 1, "<p>Body 3</p>"),
        ("id-4", "Item 4", 1, "<p>Body 4</p>"),
    ]
    assert rows(config, "SELECT count(DISTINCT last_seen) FROM entries") == [(1,)]
    assert rows(config, "SELECT count(*) FROM entries WHERE raw_hash IS NULL") == [(0,)]


def test_entries_stored_without_a_fingerprint_get_one_on_their_next_poll(
    httpserver: HTTPServer, make_config: Callable[..., Config]
) -> None:
    versions = [rss([item(1), item(2)]), rss([item(1), item(2), item(3)])]
    httpserver.expect_request("/f").respond_with_handler(
        lambda request: Response(versions.pop(0), content_type="application/rss+xml")
    )
    config = make_config([{"url": httpserver.url_for("/f"), "category": "news"}])
    run_update(config)
    with sqlite3.connect(config.settings.database_path) as db:  # as an older version stored them
        db.execute("UPDATE entries SET raw_hash = NULL")
    second = run_update(config)
    assert (second.new, second.updated) == (1, 0)
    assert rows(config, "SELECT count(*) FROM entries WHERE raw_hash IS NULL") == [(0,)]
    assert rows(config, "SELECT count(*) FROM entry_revisions") == [(0,)]


def test_entries_a_killed_run_stored_are_published_by_the_next_run(
    httpserver: HTTPServer, make_config: Callable[..., Config]
) -> None:
    # A run killed after its commit but before (or while) publishing: the next fetch-now finds nothing new
    # at the source, yet still publishes what that run stored, as does any later publish.
    httpserver.expect_request("/news.xml").respond_with_data(
        rss([item(i) for i in range(2)]), content_type="application/rss+xml"
    )
    config = make_config([{"url": httpserver.url_for("/news.xml"), "category": "news"}], publish=True)
    cli = ["--config", str(config.path), "fetch-now"]
    assert CliRunner().invoke(main, cli).exit_code == 0
    posts = config.settings.archive_dir / "site" / "_posts"
    assert len(list(posts.iterdir())) == 2
    httpserver.clear()
    httpserver.expect_request("/news.xml").respond_with_data(
        rss([item(i) for i in range(4)]), content_type="application/rss+xml"
    )
    assert run_update(config).new == 2  # stored, never published: the run "was killed" here
    again = CliRunner().invoke(main, cli)
    assert again.exit_code == 0 and "0 new entries" in again.output, again.output
    assert len(list(posts.iterdir())) == 4
    published = (config.settings.archive_dir / "feeds" / "news.atom").read_text(encoding="utf-8")
    assert published.count("<entry>") == 4
    # Killed during the very first publish (its site frame already written): the next run publishes all.
    shutil.rmtree(config.settings.archive_dir / "feeds")
    for leftover in (posts, config.settings.archive_dir / "public"):
        shutil.rmtree(leftover)
    (config.settings.archive_dir / MARK_FILE).unlink()
    assert CliRunner().invoke(main, cli).exit_code == 0
    assert len(list(posts.iterdir())) == 4
    assert (config.settings.archive_dir / "feeds" / "news.atom").read_text(encoding="utf-8").count("<entry>") == 4
    # The same when the next publish is the daemon's, naming only what it changed (here nothing).
    shutil.rmtree(config.settings.archive_dir / "feeds")
    (config.settings.archive_dir / MARK_FILE).unlink()
    with Archive.open(config.settings.database_path) as archive:
        publish_outputs(config, archive, categories=set(), entry_ids=set())
    assert (config.settings.archive_dir / "feeds" / "news.atom").read_text(encoding="utf-8").count("<entry>") == 4


def test_a_truncated_document_keeps_what_it_holds_and_says_it_was_read_in_part(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    whole = rss([item(i) for i in range(4)])
    cut = whole[: whole.index(b"<item>", whole.index(b"<item>") + 1) + 20]  # inside the second item
    httpserver.expect_request("/cut.xml").respond_with_data(cut, content_type="application/rss+xml")
    httpserver.expect_request("/whole.xml").respond_with_data(whole, content_type="application/rss+xml")
    path = write_config(
        tmp_path,
        [{"url": httpserver.url_for(p), "category": "news"} for p in ("/cut.xml", "/whole.xml")],
        publish=False,
    )
    result = CliRunner().invoke(main, ["--config", str(path), "fetch-now"])
    assert result.exit_code == 0, result.output
    assert "Feeds read with a warning:" in result.output
    [line] = [line for line in result.output.splitlines() if line.startswith(f"  {httpserver.url_for('/cut.xml')}:")]
    assert "not well-formed, read as far as it goes" in line
    assert httpserver.url_for("/whole.xml") not in result.output.split("Feeds read with a warning:")[1]
    config = load_config(path)
    statuses = dict(rows(config, "SELECT url, last_status || ' ' || last_error FROM feeds"))
    assert statuses[httpserver.url_for("/cut.xml")].startswith("ok warning: not well-formed")
    assert statuses[httpserver.url_for("/whole.xml")] == "ok "
    # The first item whole, and what the parser made of the second's beginning.
    assert rows(config, "SELECT count(*) FROM entries WHERE feed_url LIKE '%cut.xml'") == [(2,)]
    # The same bytes again ("unchanged"): the warning still holds, and stays.
    again = CliRunner().invoke(main, ["--config", str(path), "fetch-now"])
    assert again.exit_code == 0, again.output
    statuses = dict(rows(config, "SELECT url, last_status || ' ' || last_error FROM feeds"))
    assert statuses[httpserver.url_for("/cut.xml")].startswith("unchanged warning: not well-formed")


def test_a_json_feed_with_a_bare_version_number_is_archived_with_a_warning(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    document = b'{"version": "1.1", "title": "J", "items": [{"id": "1", "content_text": "x"}, {"id": "2", "url": "https://j.example/2"}]}'
    httpserver.expect_request("/feed.json").respond_with_data(document, content_type="application/feed+json")
    path = write_config(tmp_path, [{"url": httpserver.url_for("/feed.json"), "category": "news"}], publish=False)
    result = CliRunner().invoke(main, ["--config", str(path), "fetch-now"])
    assert result.exit_code == 0, result.output
    assert "Feeds read with a warning:" in result.output and "JSON Feed version is" in result.output
    config = load_config(path)
    assert rows(config, "SELECT count(*) FROM entries") == [(2,)]
    [(status, error)] = rows(config, "SELECT last_status, last_error FROM feeds")
    assert (status, error) == ("ok", 'warning: the JSON Feed version is "1.1", not a https://jsonfeed.org/version/ URL')


def test_an_empty_config_says_it_lists_no_feeds(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text("", encoding="utf-8")
    result = CliRunner().invoke(main, ["--config", str(path), "fetch-now"])
    assert result.exit_code == 0 and "Polled 0 feeds" in result.stdout
    assert result.stderr.startswith(f"warning: {path} lists no feeds"), result.stderr


def test_credentials_in_a_feed_address_are_sent_and_never_shown(httpserver: HTTPServer, tmp_path: Path) -> None:
    def handler(request: Request) -> Response:
        if request.headers.get("Authorization") != "Basic dXNlcjpzM2NyZXQ=":  # user:s3cret
            return Response("who are you?", status=401)
        return Response(rss([item(1)]), content_type="application/rss+xml")

    httpserver.expect_request("/private").respond_with_handler(handler)
    # A redirect with a full URL to the same site keeps the credentials (http -> https would too).
    httpserver.expect_request("/old").respond_with_data(
        "", status=302, headers={"Location": httpserver.url_for("/private") + "?access_token=T0KEN"}
    )
    url = httpserver.url_for("/old").replace("http://", "http://user:s3cret@") + "?access_token=T0KEN"
    path = write_config(tmp_path, [{"url": url, "category": "news"}], per_host_delay=0)
    runner = CliRunner()
    fetched = runner.invoke(main, ["--config", str(path), "fetch-now"])
    assert fetched.exit_code == 0, fetched.output
    assert rows(load_config(path), "SELECT count(*) FROM entries") == [(1,)]
    status = runner.invoke(main, ["--config", str(path), "status", "--json"])
    published = [p.read_text("utf-8") for p in (tmp_path / "archive" / "feeds").iterdir() if p.is_file()]
    for text in (fetched.output, status.output, *published):
        assert "s3cret" not in text and "T0KEN" not in text
    assert "user:***@" not in status.output and "***@" in status.output and "access_token=***" in status.output


def test_fetch_now_waits_as_a_stored_retry_after_asks(
    httpserver: HTTPServer, make_config: Callable[..., Config]
) -> None:
    httpserver.expect_request("/busy").respond_with_data("slow down", status=429, headers={"Retry-After": "3600"})
    config = make_config([{"url": httpserver.url_for("/busy"), "category": "news"}])
    assert run_update(config).outcomes[0].status == "error"
    again = run_update(config).outcomes[0]  # fetch-now an hour early: the server is not asked again
    assert again.status == "skipped" and "Retry-After" in again.error
    assert len(httpserver.log) == 1


def test_a_feeds_ttl_still_holds_when_it_answers_304_or_the_same_body(
    httpserver: HTTPServer, make_config: Callable[..., Config]
) -> None:
    body = rss([item(1)], extra="<ttl>180</ttl>")

    def cached(request: Request) -> Response:
        if request.headers.get("If-None-Match") == '"v1"':
            return Response(status=304, headers={"ETag": '"v1"'})
        return Response(body, content_type="application/rss+xml", headers={"ETag": '"v1"'})

    httpserver.expect_request("/cached").respond_with_handler(cached)
    httpserver.expect_request("/same").respond_with_data(body, content_type="application/rss+xml")
    config = make_config(
        [{"url": httpserver.url_for(p), "category": "news"} for p in ("/cached", "/same")],
        default_interval="10m",
        max_interval="1d",
    )
    for expected in ({"ok"}, {"not_modified", "unchanged"}):
        assert {o.status for o in run_update(config).outcomes} == expected
        for (due,) in rows(config, "SELECT next_due_at FROM feeds"):
            assert datetime.fromisoformat(due) - datetime.now(UTC) > timedelta(hours=2, minutes=55)
