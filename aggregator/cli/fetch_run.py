"""One `fetch-now` run: poll the chosen feeds into the archive, print the summary, publish what changed.

Shared by the `fetch-now` command and the offline demo.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time

import click

from aggregator.core.errors import ConfigError, StorageError
from aggregator.core.models import Config, UpdateOutcome
from aggregator.core.redact import redact_url
from aggregator.daemon.schedule import next_run
from aggregator.pipeline import RunSummary, select_feeds, update_feeds
from aggregator.store.archive import Archive


def _summary_lines(summary: RunSummary, seconds: float, archive: Archive) -> list[str]:
    ok = summary.count("ok", "unchanged")
    lines = [
        f"Polled {len(summary.outcomes)} feeds in {seconds:.1f}s: {ok} ok, "
        f"{summary.count('not_modified')} not modified, "
        f"{len(summary.failed)} failed, {summary.count('skipped')} skipped; "
        f"{summary.new} new entries, {summary.updated} updated.",
        f"Archive: {archive.path} ({archive.count_entries()} entries)",
    ]
    moved = [o for o in summary.outcomes if o.moved_to]
    for outcome in moved:
        lines.append(f"  moved permanently: {outcome.url} -> {outcome.moved_to}")
    if summary.failed:
        lines.append("Failed feeds:")
        lines.extend(f"  {o.url}: {o.error}" for o in summary.failed)
    partial = [o for o in summary.outcomes if o.warning]
    if partial:
        lines.append("Feeds read with a warning:")
        lines.extend(f"  {o.url}: {o.warning}" for o in partial)
    return [redact_url(line) for line in lines]  # terminal output ends up in cron mail and CI logs


def _log_line(outcome: UpdateOutcome) -> None:
    """One plain line per feed on stderr, for logs and pipes where a progress bar makes no sense."""
    detail = outcome.error if outcome.error else f"{outcome.new} new, {outcome.updated} updated"
    if outcome.warning:
        detail += f"; warning: {outcome.warning}"
    click.echo(redact_url(f"{outcome.status:<12} {outcome.url}  {detail}"), err=True)


def run_fetch(config: Config, urls: tuple[str, ...], category: str | None, progress: bool) -> tuple[RunSummary, float]:
    if category is not None and category not in config.categories:
        raise ConfigError(
            f"{config.path}: unknown category {category!r} (known: {', '.join(sorted(config.categories))})"
        )
    unknown = [u for u in urls if u not in {f.url for f in config.feeds}]
    if unknown:
        raise ConfigError(f"{config.path}: feed not in config: {unknown[0]}")
    feeds = select_feeds(config, urls, category)
    started = time.monotonic()
    with Archive.open(config.settings.database_path) as archive:
        if progress and feeds:
            with click.progressbar(length=len(feeds), label="Polling feeds", file=sys.stderr) as bar:

                def advance(_outcome: UpdateOutcome) -> None:
                    bar.update(1)

                summary = asyncio.run(
                    update_feeds(config, feeds, archive, on_outcome=advance, log_outcomes=False, skip_gone=not urls)
                )
        else:
            summary = asyncio.run(
                update_feeds(config, feeds, archive, on_outcome=_log_line, log_outcomes=False, skip_gone=not urls)
            )
        seconds = time.monotonic() - started
        if not summary.storage_error:
            _schedule_as_the_daemon_will(config, archive, summary)
        for line in _summary_lines(summary, seconds, archive):
            click.echo(line)
        if config.settings.publish and not summary.storage_error:
            _publish_after_fetch(config, archive, summary)
    return summary, seconds


def _schedule_as_the_daemon_will(config: Config, archive: Archive, summary: RunSummary) -> None:
    """Store each polled feed's next due time by the daemon's rule (the poll's own estimate, min_interval, the
    adaptive interval, jitter): a daemon running beside notices the poll when the feed's job fires and keeps
    that time as it stands, and `status` shows when the feed is really polled next."""
    configured = {feed.url: feed for feed in config.feeds if feed.enabled}
    polled = [o.url for o in summary.outcomes if o.url in configured and o.status != "skipped" and not o.unstored]
    if not polled:
        return
    rng = random.Random()
    try:
        due = {}
        for url, row in archive.schedule_rows(polled).items():
            if not row.gone:
                when = next_run(config.settings, configured[url], row, None, archive.recent_published, rng)
                due[url] = (when, row.last_fetched_at)
        archive.set_next_due(due)
    except StorageError as error:  # the poll is stored: its own estimate stands
        click.echo(redact_url(f"warning: {error}"), err=True)


def _publish_after_fetch(config: Config, archive: Archive, summary: RunSummary) -> None:
    from aggregator.publishing.outputs import publish_outputs

    changed_ids = {entry_id for outcome in summary.outcomes for entry_id in outcome.changed_ids}
    # What this run changed; publish_outputs adds what earlier runs stored but did not publish, and
    # publishes everything until a publish of this archive has completed.
    report = publish_outputs(config, archive, categories=summary.changed_categories, entry_ids=changed_ids)
    click.echo(report.summary())
