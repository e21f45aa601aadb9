"""`aggregator show` and `aggregator history`: one entry, its revisions and their diffs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner
from pytest_httpserver import HTTPServer
from werkzeug import Response

from aggregator.cli.commands import main
from aggregator.core.models import Config
from aggregator.store.archive import Archive
from aggregator.store.history import text_lines
from tests.conftest import run_update
from tests.feeds import item, rss
from tests.store.test_search import sample_config  # noqa: F401  (fixture)


def run(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--config", str(config), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_show_by_id_prefix(sample_config: Path) -> None:  # noqa: F811
    _code, out, _err = run(sample_config, "search", "--json", "征管改革")
    entry_id = json.loads(out)[0]["entry_id"]
    code, out, err = run(sample_config, "show", entry_id[:6])
    assert code == 0, err
    assert out.startswith("“四维”发力 确保征管改革见成效\n")
    assert f"id:        {entry_id}" in out and "published: 2022-03-16 08:54:16 +0800" in out
    assert "增强战略定力，坚定不移搞改革\n" in out and "<p>" not in out
    assert "<p>" in run(sample_config, "show", entry_id, "--html")[1]
    data = json.loads(run(sample_config, "show", entry_id, "--json")[1])
    assert data["id"] == entry_id and data["tags"] == ["中国税务报新闻"]
    # An entry with a summary and a content shows both, the summary first.
    with Archive.open(sample_config.parent / "archive" / "aggregator.db") as archive:
        both = next(e for e in archive.entries() if e.summary and e.content)
    out = run(sample_config, "show", both.id)[1]
    summary, content = text_lines(both.summary)[0], text_lines(both.content)[0]
    assert summary in out and content in out and out.index(summary) < out.index(content)


def test_unknown_ambiguous_and_malformed_ids(sample_config: Path) -> None:  # noqa: F811
    for text, message in [("ffffffffffffffff", "no entry with id"), ("zz-top", "not an entry id"), ("a", "at least 4")]:
        code, _out, err = run(sample_config, "show", text)
        assert code == 1 and message in err, err
    with Archive.open(sample_config.parent / "archive" / "aggregator.db") as archive:
        entry_id = next(archive.entries()).id
    code, out, err = run(sample_config, "history", entry_id[:4])
    assert code == 0 and "1 version" in out, err


def test_history_shows_revisions_and_a_unified_diff(httpserver: HTTPServer, make_config: Callable[..., Config]) -> None:
    first = "<p>第一段：原来的文字。</p><p>Second paragraph stays.</p>"
    second = "<p>第一段：更正后的文字。</p><p>Second paragraph stays.</p>"
    versions = [
        rss([item(1, description=first)]),
        rss([item(1, title="Item 1 (corrected)", description=second)]),
    ]
    httpserver.expect_request("/f").respond_with_handler(
        lambda request: Response(versions.pop(0), content_type="application/rss+xml")
    )
    config = make_config([{"url": httpserver.url_for("/f"), "category": "news"}])
    run_update(config)
    run_update(config)
    with Archive.open(config.settings.database_path) as archive:
        entry_id = next(archive.entries()).id
    code, out, err = run(config.path, "history", entry_id[:8])
    assert code == 0, err
    assert "Item 1 (corrected)" in out and "2 versions" in out
    assert "--- revision 1 (" in out and "+++ revision 2 (" in out
    assert "-title: Item 1\n+title: Item 1 (corrected)\n" in out
    assert "-第一段：原来的文字。\n+第一段：更正后的文字。\n Second paragraph stays.\n" in out
    html_out = run(config.path, "history", entry_id, "--html")[1]
    assert "-<p>第一段：原来的文字。</p>" in html_out
    kept = json.loads(run(config.path, "history", entry_id, "--json")[1])
    assert [v["revision"] for v in kept] == [1, 2] and kept[0]["superseded_at"] and kept[1]["superseded_at"] is None
    code, out, _err = run(config.path, "show", entry_id)
    assert f"revision:  2  (see `aggregator history {entry_id[:8]}`)" in out


def test_show_says_when_a_dates_zone_was_a_guess(httpserver: HTTPServer, make_config: Callable[..., Config]) -> None:
    dates = ["Tue, 15 Jul 2025 10:00:00 CEST", "Tue, 15 Jul 2025 10:00:00 IST"]
    body = rss([item(n, pubDate=date) for n, date in enumerate(dates)])
    httpserver.expect_request("/f").respond_with_data(body, content_type="application/rss+xml")
    config = make_config([{"url": httpserver.url_for("/f"), "category": "news"}])
    run_update(config)
    with Archive.open(config.settings.database_path) as archive:
        cest, ist = sorted(archive.entries(), key=lambda entry: entry.title)
    assert (cest.published.isoformat(), cest.date_flag) == ("2025-07-15T10:00:00+02:00", "")
    assert (ist.published.isoformat(), ist.date_flag) == ("2025-07-15T10:00:00+00:00", "zone")
    out = run(config.path, "show", cest.id)[1]
    assert "published: 2025-07-15 10:00:00 +0200\n" in out
    out = run(config.path, "show", ist.id)[1]
    assert "published: 2025-07-15 10:00:00 +0000  (its zone name is ambiguous or unknown" in out
