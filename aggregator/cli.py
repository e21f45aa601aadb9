"""The `aggregator` command line. Every error a user can cause is one line on stderr, never a traceback."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .config import load_config
from .errors import AggregatorError, ConfigError
from .models import Config, UpdateOutcome
from .pipeline import RunSummary, select_feeds, update_feeds
from .store import Archive

F = TypeVar("F", bound=Callable[..., Any])
EXIT_CONFIG = 2


class AggregatorGroup(click.Group):
    """Turns our errors into one line and an exit code wherever a command raises them."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as error:
            click.echo(f"error: {error}", err=True)
            ctx.exit(EXIT_CONFIG)
        except AggregatorError as error:
            click.echo(f"error: {error}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


def setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper()), format="%(levelname)s %(message)s", stream=sys.stderr)


@click.group(cls=AggregatorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="aggregator")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("feeds.yaml"),
    show_default=True,
    help="The feeds.yaml to use; relative paths inside it are relative to its own folder.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="warning",
    show_default=True,
    help="How much to log on stderr.",
)
@click.pass_context
def main(ctx: click.Context, config_path: Path, log_level: str) -> None:
    """Poll RSS/Atom/JSON feeds into a SQLite archive that keeps every entry forever.

    \b
    Example:
      aggregator --config feeds.yaml fetch-now
    """
    setup_logging(log_level)
    ctx.obj = {"config_path": config_path}


def load(ctx: click.Context) -> Config:
    return load_config(ctx.obj["config_path"])


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
    return lines


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

                summary = asyncio.run(update_feeds(config, feeds, archive, on_outcome=advance))
        else:
            summary = asyncio.run(update_feeds(config, feeds, archive))
        seconds = time.monotonic() - started
        for line in _summary_lines(summary, seconds, archive):
            click.echo(line)
    return summary, seconds


@main.command("fetch-now")
@click.argument("urls", nargs=-1)
@click.option("--category", help="Poll only the feeds of this category.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
@click.pass_context
def fetch_now(ctx: click.Context, urls: tuple[str, ...], category: str | None, progress: bool | None) -> None:
    """Poll every enabled feed once, now (or only URLS, or one --category), and store what is new.

    Exit status: 0 when the run completed (failed feeds are listed), 1 when nothing could be fetched
    or the archive could not be written, 2 for configuration errors.

    \b
    Examples:
      aggregator fetch-now
      aggregator fetch-now --category zhongguoshuiwubao
      aggregator fetch-now https://example.org/feed.xml
    """
    config = load(ctx)
    show_progress = sys.stderr.isatty() if progress is None else progress
    summary, _seconds = run_fetch(config, urls, category, show_progress)
    if summary.storage_error:
        click.echo(f"error: {summary.storage_error}", err=True)
        ctx.exit(1)
    polled = [o for o in summary.outcomes if o.status != "skipped"]
    if polled and all(o.status in ("error", "gone") for o in polled):
        click.echo("error: no feed could be fetched", err=True)
        ctx.exit(1)


@main.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to create the demo archive (default: a new temporary folder).",
)
def demo(directory: Path | None) -> None:
    """Run the whole main job offline on bundled sample feeds (RSS 2.0, Atom 1.0, a GBK-encoded Chinese
    feed) served on 127.0.0.1, into a fresh archive, and show what was stored.

    \b
    Example:
      aggregator demo
    """
    from .demo import run_demo

    run_demo(directory)
