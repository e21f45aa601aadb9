"""`aggregator search`: FTS5 (unicode61, CJK characters spaced out) over entries and earlier versions, via the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer
from werkzeug import Response

from aggregator.cli.commands import main
from aggregator.cli.demo import DEMO_CONFIG, serve_samples
from aggregator.configuration.load import load_config
from aggregator.core.fulltext import split_cjk
from aggregator.core.models import Config
from aggregator.store.archive import Archive
from aggregator.store.search import find_spans, make_snippet, parse_query
from tests.conftest import run_update
from tests.feeds import item, rss


@pytest.fixture
def sample_config(tmp_path: Path) -> Iterator[Path]:
    """feeds.yaml for the three bundled sample feeds (one GBK Chinese), polled once into a real archive."""
    with serve_samples() as base:
        path = tmp_path / "feeds.yaml"
        path.write_text(DEMO_CONFIG.format(base=base).replace("base_url:", "publish: false\n  base_url:"), "utf-8")
        run_update(load_config(path))
        yield path


def invoke(config_path: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--config", str(config_path), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def search_json(config_path: Path, *args: str) -> list[dict[str, object]]:
    code, out, err = invoke(config_path, "search", "--json", *args)
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def test_chinese_phrase_is_found_ranked_with_snippet_and_highlight(sample_config: Path) -> None:
    hits = search_json(sample_config, "征管改革")
    assert [h["title"] for h in hits] == ["“四维”发力 确保征管改革见成效"]
    hit = hits[0]
    assert hit["category"] == "zhongguoshuiwubao"
    assert hit["published"] == "2022-03-16T08:54:16+08:00"
    assert hit["link"].startswith("http://finews.zning.xyz/")  # type: ignore[union-attr]
    start, end = hit["highlights"][0]  # type: ignore[index]
    assert hit["snippet"][start:end] == "征管改革"  # type: ignore[index]
    assert hit["in_revision"] is False


def test_short_chinese_words_are_found_through_the_index(sample_config: Path) -> None:
    code, out, err = invoke(sample_config, "search", "--json", "税务")
    assert code == 0 and err == ""  # no scan, no note
    hits = json.loads(out)
    assert len(hits) >= 2
    for hit in hits:  # highlights are on the stored text, not the index's spaced-out form
        marked = [hit["title"][s:e] for s, e in hit["title_highlights"]] + [
            hit["snippet"][s:e] for s, e in hit["highlights"]
        ]
        assert marked and set(marked) == {"税务"}, hit
        assert "税 务" not in hit["snippet"]
    single = search_json(sample_config, "税")  # one character is a word of its own
    assert len(single) >= len(hits)


def test_latin_words_fold_case_and_accents_and_star_matches_word_beginnings(
    httpserver: HTTPServer, make_config: Callable[..., Config]
) -> None:
    body = rss([item(1, title="Café culture", description="<p>Archiving the archives</p>"), item(2, title="Cafeteria")])
    httpserver.expect_request("/f").respond_with_data(body, content_type="application/rss+xml")
    config = make_config([{"url": httpserver.url_for("/f"), "category": "news"}])
    run_update(config)
    [hit] = search_json(config.path, "CAFE")  # whole words: Cafeteria is not a match
    assert hit["title"] == "Café culture" and hit["title_highlights"] == [[0, 4]]
    assert search_json(config.path, "archiv") == []
    [hit] = search_json(config.path, "archiv*")
    assert [hit["snippet"][s:e] for s, e in hit["highlights"]] == ["Archiving", "archives"]
    assert len(search_json(config.path, "caf*")) == 2
    code, out, err = invoke(config.path, "search", "--json", "café #")
    assert code == 0 and len(json.loads(out)) == 1 and err.startswith("note: ignored #")
    code, _out, err = invoke(config.path, "search", "# !!")
    assert code == 1 and err.startswith("error: nothing to search for")


def test_text_output_and_filters(sample_config: Path) -> None:
    code, out, _err = invoke(sample_config, "search", "征管改革")
    assert code == 0
    assert "“四维”发力 确保征管改革见成效" in out and "2022-03-16 08:54 +0800" in out
    assert search_json(sample_config, "征管改革", "--category", "tech") == []
    assert search_json(sample_config, "征管改革", "--since", "2022-03-17") == []
    assert len(search_json(sample_config, "征管改革", "--since", "2022-03-16")) == 1
    # A time with its offset, written with a space or a T (08:54:16 +0800 is 00:54:16 UTC).
    for since in ("2022-03-16 08:54:16+08:00", "2022-03-16T08:54:16+0800"):
        assert len(search_json(sample_config, "征管改革", "--since", since)) == 1, since
    assert search_json(sample_config, "征管改革", "--since", "2022-03-16 08:54:17+08:00") == []
    latin = search_json(sample_config, "etag")  # case-insensitive for Latin letters
    assert latin and all(h["category"] == "tech" for h in latin)


def test_all_terms_required_and_phrases_keep_spaces(sample_config: Path) -> None:
    assert search_json(sample_config, "征管改革 税务")  # both occur
    assert search_json(sample_config, "征管改革 Radwege") == []  # never in one entry
    assert search_json(sample_config, '"见成效 征管改革"') == []  # a phrase keeps its order
    # Spaces inside a Chinese phrase do not matter: every character is a word of its own.
    assert search_json(sample_config, '"征管改革 见成效"') == search_json(sample_config, "征管改革见成效") != []


def test_or_not_and_minus_do_what_they_say(sample_config: Path) -> None:
    def titles(*args: str) -> set[object]:
        return {hit["title"] for hit in search_json(sample_config, *args)}

    tax, bikes = titles("征管改革"), titles("Radwege")
    assert tax and bikes and not tax & bikes
    assert titles("征管改革 OR Radwege") == tax | bikes  # either
    assert titles("征管改革 AND 税务") == titles("征管改革 税务")  # AND is what every search does
    everything_tax = titles("税务")
    assert titles("税务 NOT 征管改革") == titles("税务 -征管改革") == everything_tax - tax
    assert titles('"OR"') == titles("or")  # quoted or in lower case, it is a word to find
    # A query that only excludes, even one starting with "-", is one line, not a click option error.
    code, _out, err = invoke(sample_config, "search", "-征管改革")
    assert code == 1 and err.startswith("error: nothing to search for") and err.count("\n") == 1, err
    # Nor one whose letters click would read as short options (-h among them: help, exit 0).
    for query in ("-archive", "-hello", "-c"):
        code, out, err = invoke(sample_config, "search", query, "--limit", "3")
        assert code == 1 and err.startswith("error: nothing to search for") and not out, (query, out, err)
    assert titles("--json", "税务", "--sort=date", "--limit", "50", "-征管改革") == everything_tax - tax
    # A misspelt option or one missing its value is still click's error, not a query.
    code, _out, err = invoke(sample_config, "search", "税务", "--catgory", "news")
    assert code == 2 and "No such option '--catgory'. Did you mean '--category'?" in err
    code, _out, err = invoke(sample_config, "search", "税务", "--category")
    assert code == 2 and "Option '--category' requires an argument." in err


def test_bad_input_is_one_line(sample_config: Path, tmp_path: Path) -> None:
    code, _out, err = invoke(sample_config, "search", '""')
    assert code == 1 and err.startswith("error: empty search query")
    code, _out, err = invoke(sample_config, "search", "x", "--category", "nope")
    assert code == 2 and "unknown category 'nope'" in err
    code, _out, err = invoke(sample_config, "search", "x", "--feed", "https://nowhere.example/feed.xml")
    assert code == 2 and "unknown feed 'https://nowhere.example/feed.xml'" in err and "\n" not in err.strip()
    empty = tmp_path / "empty" / "feeds.yaml"
    empty.parent.mkdir()
    empty.write_text("categories: {a: {title: A}}\nfeeds: []\n", "utf-8")
    code, _out, err = invoke(empty, "search", "x")
    assert code == 1 and "run `aggregator fetch-now` first" in err
    assert not (empty.parent / "archive" / "aggregator.db").exists()


def test_an_earlier_version_is_searchable_and_deduplicated(
    httpserver: HTTPServer, make_config: Callable[..., Config]
) -> None:
    versions = [
        rss([item(1, description="<p>旧的表述：留抵退税 first wording</p>"), item(2)]),
        rss([item(1, description="<p>新的表述：减税降费 second wording</p>"), item(2)]),
    ]
    httpserver.expect_request("/f").respond_with_handler(
        lambda request: Response(versions.pop(0), content_type="application/rss+xml")
    )
    config = make_config([{"url": httpserver.url_for("/f"), "category": "news"}])
    run_update(config)
    run_update(config)
    only_before = search_json(config.path, "留抵退税")
    assert len(only_before) == 1
    assert only_before[0]["in_revision"] is True and only_before[0]["revision"] == 1
    assert "<p>" not in only_before[0]["snippet"]  # the revision was indexed as plain text
    both = search_json(config.path, "wording")  # current and earlier versions match: listed once
    assert [h["in_revision"] for h in both] == [False]
    assert search_json(config.path, "second")[0]["in_revision"] is False
    _code, out, _err = invoke(config.path, "search", "留抵退税")
    assert "matched earlier revision 1" in out


def test_revisions_are_searchable_and_an_older_archive_is_reindexed_from_its_entries(
    httpserver: HTTPServer, make_config: Callable[..., Config]
) -> None:
    versions = [
        rss([item(1, title="第一版", description="<p>旧的表述：留抵退税 first &amp; wording</p>")]),
        rss([item(1, title="第二版", description="<p>新的表述：减税降费</p>")]),
    ]
    httpserver.expect_request("/f").respond_with_handler(
        lambda request: Response(versions.pop(0), content_type="application/rss+xml")
    )
    config = make_config([{"url": httpserver.url_for("/f"), "category": "news"}])
    run_update(config)
    run_update(config)

    def found(query: str) -> list[tuple[str, bool]]:
        return [(hit["title"], hit["in_revision"]) for hit in search_json(config.path, query)]

    def index_matches(table: str, query: str) -> int:
        with Archive.open(config.settings.database_path) as archive:
            return int(archive.db.execute(f"SELECT count(*) FROM {table} WHERE {table} MATCH ?", [query]).fetchone()[0])

    assert found("留抵退税") == [("第一版", True)] and found("减税降费") == [("第二版", False)]
    assert found("第一版") == [("第一版", True)]
    # The old version's row left the current index with the text it was indexed with: nothing of it remains.
    assert index_matches("entries_fts", '"留 抵 退 税"') == 0 and index_matches("entries_fts", "wording") == 0
    assert index_matches("entries_fts", '"减 税 降 费"') == 1
    # An archive from before contentless search, whose index lost its rows: rebuilt from the entries.
    with Archive.open(config.settings.database_path) as archive:
        archive.db.executescript(
            "DROP TRIGGER entry_revisions_search; DROP TABLE revisions_fts; DROP TABLE entries_fts; "
            "CREATE VIRTUAL TABLE entries_fts USING fts5(title, body, tokenize = 'unicode61 remove_diacritics 2'); "
            "DELETE FROM _sqlite_migrations WHERE name IN ('m_search_revisions_fts', 'm_contentless_search');"
        )
    assert found("留抵退税") == [("第一版", True)] and found("减税降费") == [("第二版", False)]
    assert index_matches("entries_fts", "wording") == 0 and index_matches("revisions_fts", "wording") == 1


def test_query_parsing_and_snippets() -> None:
    assert [term.text for term in parse_query('征管改革  "tax  reform" tax 征管改革').terms] == [
        "征管改革",
        "tax reform",
        "tax",
    ]
    assert find_spans("ETag and etag", ["etag"]) == ((0, 4), (9, 13))
    assert find_spans("Café, cafe; CAFÉS", ["cafe"]) == ((0, 4), (6, 10))
    assert find_spans("推进征管改革，优化服务", ["征管改革", "服"]) == ((2, 6), (9, 10))
    assert find_spans("tax, reform; taxreform", ['"tax reform"'.strip('"')]) == ((0, 11),)
    assert find_spans("archive archiving", ["archiv*"]) == ((0, 7), (8, 17))
    text, spans = make_snippet("x " * 150 + "needle" + " y" * 150, ["needle"], width=60)
    assert text.startswith("…") and text.endswith("…")
    assert [text[s:e] for s, e in spans] == ["needle"]


def test_datasette_metadata_matches_the_schema_and_its_queries_run(sample_config: Path) -> None:
    """datasette-metadata.json describes real tables and columns, and every canned query runs."""
    import sqlite3

    metadata = json.loads((Path(__file__).resolve().parents[2] / "datasette-metadata.json").read_text("utf-8"))
    database = metadata["databases"]["aggregator"]
    with sqlite3.connect(sample_config.parent / "archive" / "aggregator.db") as db:
        for table, described in database["tables"].items():
            columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            assert set(described["columns"]) <= columns, table
        params = {"per_category": "2", "q": "征管改革"}
        results = {
            name: db.execute(query["sql"], {k: v for k, v in params.items() if f":{k}" in query["sql"]}).fetchall()
            for name, query in database["queries"].items()
        }
    assert {"latest_per_category", "feeds_in_error", "revised_entries"} <= set(results)
    assert len(results["latest_per_category"]) == 6  # 2 for each of the 3 categories
    assert results["search"][0][3] == "“四维”发力 确保征管改革见成效"
    # The canned query spaces out CJK characters in SQL exactly as fulltext.split_cjk does for the index.
    search_sql = database["queries"]["search"]["sql"]
    with sqlite3.connect(sample_config.parent / "archive" / "aggregator.db") as db:
        assert len(db.execute(search_sql, {"q": "税务"}).fetchall()) >= 2
        spaced_sql = search_sql[: search_sql.index(" SELECT e.id")] + " SELECT s FROM spaced ORDER BY i DESC LIMIT 1"
        edges = [0x2E7F, 0x2E80, 0x2FDF, 0x2FE0, 0x303F, 0x3040, 0x312F, 0x3130, 0x318F, 0x3190, 0x31FF, 0x3200]
        edges += [0x33FF, 0x3400, 0x4DBF, 0x4DC0, 0x4DFF, 0x4E00, 0x9FFF, 0xA000, 0xABFF, 0xAC00, 0xD7AF, 0xD7B0]
        edges += [0xF8FF, 0xF900, 0xFAFF, 0xFB00, 0x1FFFF, 0x20000, 0x3134F, 0x31350]
        text = "ab" + "".join(chr(code) + "x" for code in edges)
        [(spaced,)] = db.execute(spaced_sql, {"q": text}).fetchall()
    assert spaced.split() == split_cjk(text).split()


def test_reading_commands_work_on_an_archive_this_user_may_not_write(sample_config: Path) -> None:
    import os
    import shutil
    import sqlite3

    from aggregator.core.errors import StorageError
    from aggregator.store.search import search

    folder = sample_config.parent / "archive"
    database = folder / "aggregator.db"
    before = database.read_bytes()
    database.chmod(0o444)
    folder.chmod(0o555)
    try:
        # Root may write anyway (CI runs as root): there the read-only connection is opened directly.
        if os.geteuid() != 0:
            for command in (["search", "税务"], ["status"], ["export", "--format", "jsonl"], ["opml", "export"]):
                code, out, err = invoke(sample_config, *command)
                assert code == 0 and out and not err.startswith("error"), (command, err)
        with Archive.open_read_only(database) as archive:
            assert search(archive, "税务").hits
            assert len(archive.feed_statuses()) == 3
    finally:
        folder.chmod(0o755)
        database.chmod(0o644)
    assert database.read_bytes() == before

    # An archive that needs a schema upgrade says so instead of failing on a missing column.
    older = sample_config.parent / "older.db"
    shutil.copy(database, older)
    with sqlite3.connect(older) as db:
        db.execute("DELETE FROM _sqlite_migrations WHERE name = 'm_ttl_in_seconds'")
    with pytest.raises(StorageError, match="needs an upgrade this user cannot write"):
        Archive.open_read_only(older)
