"""`aggregator status` and the daemon's /healthz and /metrics documents, on a real archive filled from
the bundled sample feeds served on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from aggregator.cli.commands import main
from aggregator.cli.demo import serve_samples
from aggregator.core.models import Config, UpdateOutcome
from aggregator.serving.metrics import DaemonMetrics, health_app
from aggregator.serving.status import feed_rows
from aggregator.store.archive import Archive
from tests.conftest import run_update, write_config


def sample_config(make_config: Callable[..., Config], base: str) -> Config:
    return make_config(
        [
            {"url": f"{base}/tech/rss2.xml", "category": "tech"},
            {"url": f"{base}/missing.xml", "category": "tech"},
            {"url": f"{base}/news/atom.xml", "category": "news"},
        ]
    )


def test_status_table_json_and_never_polled_feeds(make_config: Callable[..., Config], tmp_path: Path) -> None:
    with serve_samples() as base:
        config = sample_config(make_config, base)
        run_update(config, [f for f in config.feeds if "news" not in f.url])  # news: configured, never polled
    runner = CliRunner()
    result = runner.invoke(main, ["--config", str(config.path), "status"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:4] == ["CATEGORY", "FEED", "LAST", "FETCH"]
    assert any("missing.xml" in line and "error 404" in line and "HTTP 404" in line for line in lines)
    assert any("atom.xml" in line and "never" in line for line in lines)
    assert (
        lines[-1]
        == "3 feeds: 1 ok, 1 in error, 0 gone, 1 never polled; 3 entries archived; " + lines[-1].split("; ")[-1]
    )

    result = runner.invoke(main, ["--config", str(config.path), "status", "--json"])
    assert result.exit_code == 0
    feeds = {row["url"].rsplit("/", 1)[-1]: row for row in json.loads(result.output)}
    assert feeds["rss2.xml"]["entries"] == 3 and feeds["rss2.xml"]["last_status"] == "ok"
    assert feeds["missing.xml"]["consecutive_errors"] == 1 and feeds["missing.xml"]["last_http_status"] == 404
    assert feeds["atom.xml"]["last_fetched_at"] is None and feeds["atom.xml"]["next_due_at"] is None
    assert feeds["rss2.xml"]["next_due_at"] is not None
    # Disabled, or gone from feeds.yaml: never due.
    disabled = replace(config, feeds=tuple(replace(f, enabled=False) if "rss2" in f.url else f for f in config.feeds))
    with Archive.open(config.settings.database_path) as archive:
        rows = {row["url"].rsplit("/", 1)[-1]: row for row in feed_rows(disabled, archive.feed_statuses())}
    assert rows["rss2.xml"]["next_due_at"] is None and rows["missing.xml"]["next_due_at"] is not None


def test_status_before_any_archive_exists_lists_configured_feeds(tmp_path: Path) -> None:
    path = write_config(tmp_path, [{"url": "http://127.0.0.1:9/feed.xml", "category": "tech"}])
    result = CliRunner().invoke(main, ["--config", str(path), "status"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].startswith("1 feeds: 0 ok, 0 in error, 0 gone, 1 never polled")
    assert not (tmp_path / "archive" / "aggregator.db").exists()  # a reading command creates nothing


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, read by the Prometheus client's own parser."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_healthz_and_metrics_documents(make_config: Callable[..., Config]) -> None:
    with serve_samples() as base:
        config = sample_config(make_config, base)
        summary = run_update(config)
    metrics = DaemonMetrics()
    for outcome in summary.outcomes:
        metrics.observe(outcome, 0.3)
    metrics.observe(UpdateOutcome(url="x", category="tech", status="not_modified"), 12.0)
    with Archive.open(config.settings.database_path) as archive:
        rows = feed_rows(config, archive.feed_statuses())
        total = archive.count_entries()

    async def health() -> dict[str, Any]:
        return metrics.health(rows)

    async def prometheus(accept: str) -> tuple[bytes, str]:
        return metrics.prometheus(rows, total, accept)

    async def fetch(path: str, method: str = "GET", headers: dict[str, str] | None = None) -> httpx.Response:
        transport = httpx.ASGITransport(app=health_app(health, prometheus))
        async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as client:
            return await client.request(method, path, headers=headers)

    response = asyncio.run(fetch("/healthz"))
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    document = response.json()
    assert document["status"] == "ok" and document["polls"] == {"ok": 2, "error": 1, "not_modified": 1}
    assert document["summary"]["in_error"] == 1 and len(document["feeds"]) == 3

    response = asyncio.run(fetch("/metrics"))
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = scrape(response.text)
    assert samples["aggregator_polls_total", (("result", "ok"),)] == 2
    assert samples["aggregator_polls_total", (("result", "gone"),)] == 0  # every result, from the start
    assert samples["aggregator_entries_stored_total", (("kind", "new"),)] == 5
    assert samples["aggregator_archive_entries", ()] == total
    assert samples["aggregator_feeds_in_error", ()] == 1
    assert samples["aggregator_degraded", (("part", "archive"),)] == 0
    assert samples["process_resident_memory_bytes", ()] > 0  # the standard client's process metrics
    # Histogram buckets are cumulative: three polls took 0.3s, one 12s.
    bucket = "aggregator_update_duration_seconds_bucket"
    assert samples[bucket, (("le", "0.25"),)] == 0
    assert samples[bucket, (("le", "0.5"),)] == 3
    assert samples[bucket, (("le", "10.0"),)] == 3
    assert samples[bucket, (("le", "+Inf"),)] == 4
    # A scraper that asks for OpenMetrics gets it.
    response = asyncio.run(fetch("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}))
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")

    # Degraded: /healthz answers 503 and says why, /metrics shows the part.
    metrics.degrade("archive", "database or disk is full")
    response = asyncio.run(fetch("/healthz"))
    assert response.status_code == 503 and response.json()["status"] == "degraded"
    assert response.json()["degraded"]["archive"]["reason"] == "database or disk is full"
    assert scrape(asyncio.run(fetch("/metrics")).text)["aggregator_degraded", (("part", "archive"),)] == 1
    metrics.recover("archive")
    assert asyncio.run(fetch("/healthz")).status_code == 200

    async def stopping() -> dict[str, Any]:
        return metrics.health(rows, stopping=True)

    async def fetch_stopping() -> httpx.Response:
        transport = httpx.ASGITransport(app=health_app(stopping, prometheus))
        async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as client:
            return await client.get("/healthz")

    response = asyncio.run(fetch_stopping())
    assert response.status_code == 503 and response.json()["status"] == "stopping"

    assert asyncio.run(fetch("/other")).status_code == 404
    assert asyncio.run(fetch("/metrics", "POST")).status_code == 405
