"""Every document of feedparser's own test corpus goes through fetch -> parse -> normalise -> store
without an unhandled error (served from a real local HTTP server)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import pytest
from pytest_httpserver import HTTPServer

from aggregator.core.models import Config
from tests.conftest import CORPUS, corpus_files, run_update

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"feedparser corpus not found at {CORPUS}")


def test_whole_corpus_goes_through_the_pipeline(httpserver: HTTPServer, make_config: Callable[..., Config]) -> None:
    files = corpus_files()
    assert len(files) > 2000
    feeds = []
    for index, path in enumerate(files):
        route = f"/corpus/{index}/{path.name}"
        httpserver.expect_request(route).respond_with_data(path.read_bytes(), content_type="application/xml")
        feeds.append({"url": httpserver.url_for(route), "category": path.parent.name})
    config = make_config(feeds, per_host_concurrency=16, concurrency=16, per_host_delay=0)
    summary = run_update(config)
    assert len(summary.outcomes) == len(files)
    internal = [o for o in summary.outcomes if o.error.startswith(("internal error", "parser failed"))]
    assert internal == []
    failed = [o for o in summary.outcomes if o.status == "error"]
    # Only documents that really are not feeds are refused, each with a one-line reason.
    assert len(failed) < 20, [(o.url, o.error) for o in failed]
    assert all("\n" not in o.error and o.error for o in failed)
    with sqlite3.connect(config.settings.database_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = db.execute("SELECT count(*) FROM entries").fetchone()[0]
    assert stored == summary.new > 1000
