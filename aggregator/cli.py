"""The `aggregator` command line. Every error a user can cause is one line on stderr, never a traceback."""

from __future__ import annotations

import asyncio
import json
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


GLOBAL_OPTIONS = ("--config", "--log-level")


def hoist_global_options(args: list[str]) -> list[str]:
    """`aggregator fetch-now --config x.yaml` means `aggregator --config x.yaml fetch-now`: the global
    options are accepted after the command name too, where people naturally type them."""
    front: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            rest.extend(args[index:])
            break
        name = arg.split("=", 1)[0]
        if name in GLOBAL_OPTIONS:
            if "=" in arg:
                front.append(arg)
            else:
                front.extend(args[index : index + 2])
                index += 1
        else:
            rest.append(arg)
        index += 1
    return front + rest


class AggregatorGroup(click.Group):
    """Turns our errors into one line and an exit code wherever a command raises them."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(args))

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


def _log_line(outcome: UpdateOutcome) -> None:
    """One plain line per feed on stderr, for logs and pipes where a progress bar makes no sense."""
    detail = outcome.error if outcome.error else f"{outcome.new} new, {outcome.updated} updated"
    click.echo(f"{outcome.status:<12} {outcome.url}  {detail}", err=True)


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
            summary = asyncio.run(update_feeds(config, feeds, archive, on_outcome=_log_line))
        seconds = time.monotonic() - started
        for line in _summary_lines(summary, seconds, archive):
            click.echo(line)
        if config.settings.publish and not summary.storage_error:
            _publish_after_fetch(config, archive, summary)
    return summary, seconds


def _publish_after_fetch(config: Config, archive: Archive, summary: RunSummary) -> None:
    from .outputs import publish_outputs

    changed_ids = {entry_id for outcome in summary.outcomes for entry_id in outcome.changed_ids}
    first_publish = not (config.settings.archive_dir / "site" / "_config.yml").exists()
    report = publish_outputs(
        config,
        archive,
        # The first publish of an archive writes everything; later ones only what this run changed.
        categories=None if first_publish else summary.changed_categories,
        entry_ids=None if first_publish else changed_ids,
    )
    click.echo(report.summary())


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


@main.command()
@click.option("--rebuild", is_flag=True, help="Re-render every feed, page and post from the database.")
@click.pass_context
def publish(ctx: click.Context, rebuild: bool) -> None:
    """Regenerate the republished feeds (archive/feeds/) and the site (archive/site/ for Jekyll,
    archive/public/ as plain HTML) from the database. Only files whose content changed are rewritten;
    with --rebuild every file is re-rendered, byte-identical when nothing changed.

    \b
    Examples:
      aggregator publish
      aggregator publish --rebuild
    """
    from .outputs import publish_outputs

    config = load(ctx)
    with Archive.open(config.settings.database_path) as archive:
        report = publish_outputs(config, archive, rebuild=rebuild)
    click.echo(report.summary())


@main.command()
@click.option("--host", default=None, help="Address to listen on (default: settings.serve_host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port (default: settings.serve_port, 8080).")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the republished feeds (/feeds/...) and the static archive site (/) over HTTP, with ETag/304,
    gzip and Cache-Control, until Ctrl-C.

    \b
    Examples:
      aggregator serve
      aggregator serve --host 0.0.0.0 --port 8000
    """
    from .server import run_server

    config = load(ctx)
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
    run_server(config, host, port, log_level=level if level in ("debug", "info", "warning", "error") else "warning")


# --- the operator's toolbox: search, feeds, opml, export, show, history -------------------------------------

_DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"]


def _open_existing_archive(config: Config) -> Archive:
    """The archive, which must exist already: reading commands never create an empty one by accident."""
    path = config.settings.database_path
    if not path.is_file():
        raise AggregatorError(f"no archive at {path} yet: run `aggregator fetch-now` first")
    return Archive.open(path)


def _check_category(config: Config, category: str | None) -> None:
    if category is not None and category not in config.categories:
        known = ", ".join(sorted(config.categories)) or "none defined"
        raise ConfigError(f"{config.path}: unknown category {category!r} (known: {known})")


def _config_for_completion(ctx: click.Context) -> Config | None:
    try:
        return load_config(ctx.find_root().params.get("config_path") or Path("feeds.yaml"))
    except AggregatorError:
        return None


def _complete_categories(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
    config = _config_for_completion(ctx)
    return [slug for slug in config.categories if slug.startswith(incomplete)] if config else []


def _complete_feed_urls(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
    config = _config_for_completion(ctx)
    return [f.url for f in config.feeds if f.url.startswith(incomplete)] if config else []


def _styled(text: str, spans: tuple[tuple[int, int], ...]) -> str:
    """`text` with the matched spans in bold yellow (click drops the colour when output is not a terminal)."""
    parts, at = [], 0
    for start, end in spans:
        parts.append(text[at:start])
        parts.append(click.style(text[start:end], fg="yellow", bold=True))
        at = end
    parts.append(text[at:])
    return "".join(parts)


@main.command("search")
@click.argument("query")
@click.option("--category", shell_complete=_complete_categories, help="Only entries of this category.")
@click.option("--feed", "feed_url", shell_complete=_complete_feed_urls, help="Only entries of this feed (its URL).")
@click.option("--since", type=click.DateTime(_DATE_FORMATS), help="Only entries published since (UTC unless offset).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True, help="At most this many.")
@click.option("--sort", type=click.Choice(["rank", "date"]), default="rank", show_default=True, help="Best or newest.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as a JSON array on stdout.")
@click.pass_context
def search_command(
    ctx: click.Context,
    query: str,
    category: str | None,
    feed_url: str | None,
    since: Any,
    limit: int,
    sort: str,
    as_json: bool,
) -> None:
    """Full-text search over the titles and text of every archived entry and every earlier version of it.

    Chinese, Japanese and Korean terms of any length (征管改革, 税务) are found inside sentences; other
    words match whole words, ignoring case and accents (cafe finds Café), and a trailing * matches
    word beginnings (archiv* finds archive, archiving). Every space-separated term must occur;
    "double quotes" keep a phrase. Results are ranked (bm25, title matches count more) or sorted by
    date, with a snippet around the match. An entry whose current text no longer matches but an
    earlier version did is marked so.

    \b
    Examples:
      aggregator search 征管改革
      aggregator search "conditional get" --category tech --since 2024-01-01
      aggregator search 税务 --limit 5 --json | jq '.[].link'
      aggregator search 'archiv*' --sort date
    """
    from dataclasses import asdict

    from .search import SortOrder, search

    config = load(ctx)
    _check_category(config, category)
    with _open_existing_archive(config) as archive:
        order: SortOrder = "date" if sort == "date" else "rank"
        result = search(archive, query, category=category, feed_url=feed_url, since=since, limit=limit, sort=order)
    if result.ignored_terms:
        shown = ", ".join(result.ignored_terms)
        click.echo(f"note: ignored {shown}: no letter or digit to search for", err=True)
    if as_json:
        rows = []
        for hit in result.hits:
            row = asdict(hit)
            row["published"] = hit.published.isoformat()
            rows.append(row)
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not result.hits:
        click.echo("No matches.", err=True)
        return
    for number, hit in enumerate(result.hits, 1):
        click.echo(f"{number:>3}. {_styled(hit.title or '(untitled)', hit.title_highlights)}")
        where = f"[{hit.category}] {hit.published:%Y-%m-%d %H:%M %z}  id {hit.entry_id}"
        if hit.in_revision:
            where += f"  (matched earlier revision {hit.revision}; see `aggregator history {hit.entry_id[:8]}`)"
        click.echo(f"     {where}")
        if hit.link:
            click.echo(f"     {hit.link}")
        if hit.snippet:
            click.echo(f"     {_styled(hit.snippet, hit.highlights)}")


@main.group("feeds")
def feeds_group() -> None:
    """List and edit the feeds in feeds.yaml, keeping its comments and layout.

    Every edit is validated (the whole file must still load) and written atomically; nothing is
    written when the result would be invalid.

    \b
    Examples:
      aggregator feeds list
      aggregator feeds add https://blog.example.org/ --category tech
      aggregator feeds disable https://blog.example.org/feed.xml
    """


@feeds_group.command("list")
@click.option("--category", shell_complete=_complete_categories, help="Only feeds of this category.")
@click.option("--json", "as_json", is_flag=True, help="Print the feeds as a JSON array on stdout.")
@click.pass_context
def feeds_list(ctx: click.Context, category: str | None, as_json: bool) -> None:
    """List the configured feeds: URL, category, title, and whether each is enabled.

    \b
    Examples:
      aggregator feeds list
      aggregator feeds list --category zhongguoshuiwubao --json
    """
    config = load(ctx)
    _check_category(config, category)
    feeds = [f for f in config.feeds if category is None or f.category == category]
    if as_json:
        rows = [
            {
                "url": f.url,
                "category": f.category,
                "title": f.title,
                "enabled": f.enabled,
                "tags": list(config.feed_tags(f)),
                "interval": f.interval,
            }
            for f in feeds
        ]
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for feed in feeds:
        state = "" if feed.enabled else "  (disabled)"
        title = f"  {feed.title}" if feed.title else ""
        click.echo(f"[{feed.category}] {feed.url}{title}{state}")
    click.echo(f"{len(feeds)} feeds", err=True)


@feeds_group.command("add")
@click.argument("url")
@click.option("--category", required=True, shell_complete=_complete_categories, help="An existing category slug.")
@click.option("--title", help="A title to use instead of the feed's own.")
@click.option("--discover/--no-discover", default=True, show_default=True, help="Find the feed of a web page.")
@click.pass_context
def feeds_add(ctx: click.Context, url: str, category: str, title: str | None, discover: bool) -> None:
    """Add a feed to feeds.yaml. Given a web page rather than a feed, the page is downloaded and its
    <link rel="alternate"> feed is added instead (the first one; the others are listed).

    \b
    Examples:
      aggregator feeds add https://example.org/feed.xml --category tech
      aggregator feeds add https://blog.example.org/ --category tech --title "Example blog"
      aggregator feeds add https://example.org/feed.xml --category tech --no-discover
    """
    from .discover import discover as discover_feed
    from .feedsfile import FeedsFile, NewFeed

    feeds_file = FeedsFile(ctx.obj["config_path"])
    _check_category(feeds_file.config, category)
    feed_url = url
    if discover:
        found = discover_feed(url, feeds_file.config.settings)
        if not found.is_feed:
            if not found.feeds:
                raise AggregatorError(f'{url}: no feed found (the page declares no <link rel="alternate"> feed)')
            feed_url = found.feeds[0].url
            click.echo(f"discovered {feed_url} ({found.feeds[0].kind}) on {url}", err=True)
            for other in found.feeds[1:]:
                click.echo(f"  also offered: {other.url} ({other.kind}) {other.title}".rstrip(), err=True)
    feeds_file.add_feeds([NewFeed(url=feed_url, category=category, title=title)])
    feeds_file.save()
    click.echo(f"added {feed_url} to {category} in {feeds_file.path}", err=True)


@feeds_group.command("remove")
@click.argument("url", shell_complete=_complete_feed_urls)
@click.pass_context
def feeds_remove(ctx: click.Context, url: str) -> None:
    """Remove a feed from feeds.yaml. Its archived entries stay in the archive.

    \b
    Example:
      aggregator feeds remove https://example.org/feed.xml
    """
    from .feedsfile import FeedsFile

    feeds_file = FeedsFile(ctx.obj["config_path"])
    feeds_file.remove_feed(url)
    feeds_file.save()
    click.echo(f"removed {url} from {feeds_file.path} (its archived entries are kept)", err=True)


def _set_enabled(ctx: click.Context, url: str, enabled: bool) -> None:
    from .feedsfile import FeedsFile

    feeds_file = FeedsFile(ctx.obj["config_path"])
    word = "enabled" if enabled else "disabled"
    if feeds_file.set_enabled(url, enabled):
        feeds_file.save()
        click.echo(f"{word} {url}", err=True)
    else:
        click.echo(f"{url} was already {word}", err=True)


@feeds_group.command("enable")
@click.argument("url", shell_complete=_complete_feed_urls)
@click.pass_context
def feeds_enable(ctx: click.Context, url: str) -> None:
    """Poll a disabled feed again (removes its `enabled: false`).

    \b
    Example:
      aggregator feeds enable https://example.org/feed.xml
    """
    _set_enabled(ctx, url, True)


@feeds_group.command("disable")
@click.argument("url", shell_complete=_complete_feed_urls)
@click.pass_context
def feeds_disable(ctx: click.Context, url: str) -> None:
    """Stop polling a feed but keep it in feeds.yaml and its entries in the archive (`enabled: false`).

    \b
    Example:
      aggregator feeds disable https://example.org/feed.xml
    """
    _set_enabled(ctx, url, False)


@main.group("opml")
def opml_group() -> None:
    """Import and export subscription lists (OPML 2.0): folders are categories.

    \b
    Examples:
      aggregator opml export > subscriptions.opml
      aggregator opml import subscriptions.opml
    """


@opml_group.command("import")
@click.argument("file", type=click.File("rb"))
@click.option("--category", shell_complete=_complete_categories, help="Put every imported feed in this category.")
@click.option("--dry-run", is_flag=True, help="Show what would be added without writing feeds.yaml.")
@click.pass_context
def opml_import(ctx: click.Context, file: Any, category: str | None, dry_run: bool) -> None:
    """Add the feeds of an OPML file to feeds.yaml. Each folder becomes a category (matched by title to
    an existing category, else created with a slug made from the folder title, e.g. 中国税务报新闻 ->
    zhong-guo-shui-wu-bao-xin-wen); with --category every feed goes into that one. Feeds already
    configured, and feeds outside any folder when no --category is given, are listed and left out.

    \b
    Examples:
      aggregator opml import subscriptions.opml
      aggregator opml import export-from-reader.opml --category news --dry-run
      curl -s https://example.org/list.opml | aggregator opml import -
    """
    from .feedsfile import FeedsFile
    from .opml_io import plan_import, read_opml

    feeds_file = FeedsFile(ctx.obj["config_path"])
    feeds = read_opml(file.read(), getattr(file, "name", "OPML"))
    plan = plan_import(feeds_file.config, feeds, category)
    for line in plan.skipped:
        click.echo(f"skipped {line}", err=True)
    for new_category in plan.categories:
        click.echo(f"new category {new_category.slug}: {new_category.title}", err=True)
    for feed in plan.feeds:
        click.echo(f"add [{feed.category}] {feed.url}", err=True)
    if not plan.feeds:
        click.echo("nothing to import", err=True)
        return
    feeds_file.add_feeds(plan.feeds, plan.categories)
    if dry_run:
        click.echo(f"dry run: {len(plan.feeds)} feeds would be added; {feeds_file.path} unchanged", err=True)
        return
    feeds_file.save()
    click.echo(f"imported {len(plan.feeds)} feeds into {feeds_file.path}", err=True)


@opml_group.command("export")
@click.pass_context
def opml_export(ctx: click.Context) -> None:
    """Print every configured feed as OPML 2.0 on stdout, one folder per category (feed titles and site
    links come from the archive when it has polled them).

    \b
    Example:
      aggregator opml export > subscriptions.opml
    """
    from .opml_io import export_opml

    config = load(ctx)
    info: dict[str, tuple[str, str]] = {}
    if config.settings.database_path.is_file():
        with Archive.open(config.settings.database_path) as archive:
            for url, title, site_url in archive.db.execute("SELECT url, title, site_url FROM feeds"):
                info[url] = (title or "", site_url or "")
    click.echo(export_opml(config, info).decode("utf-8"), nl=False)


@main.command("export")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option("--category", shell_complete=_complete_categories, help="Only entries of this category.")
@click.option("--since", type=click.DateTime(_DATE_FORMATS), help="Only entries published since (UTC unless offset).")
@click.pass_context
def export_command(ctx: click.Context, fmt: str, category: str | None, since: Any) -> None:
    """Write archived entries to stdout, newest first, as JSON Lines (one entry per line) or CSV (tags and
    enclosures as JSON inside their cells). Dates keep the source's own UTC offset.

    \b
    Examples:
      aggregator export > archive.jsonl
      aggregator export --format csv --category zhongguoshuiwubao --since 2022-03-01 > tax.csv
      aggregator export | jq -r 'select(.revision > 1) | .link'
    """
    from .export import write_export

    config = load(ctx)
    _check_category(config, category)
    with _open_existing_archive(config) as archive:
        count = write_export(archive, sys.stdout, "csv" if fmt == "csv" else "jsonl", category, since)
    click.echo(f"exported {count} entries", err=True)


@main.command("show")
@click.argument("entry")
@click.option("--html", "as_html", is_flag=True, help="Print the stored (sanitised) HTML instead of plain text.")
@click.option("--json", "as_json", is_flag=True, help="Print the entry as JSON on stdout.")
@click.pass_context
def show_command(ctx: click.Context, entry: str, as_html: bool, as_json: bool) -> None:
    """Show one archived entry, by its archive id or a unique prefix of it (at least 4 digits).

    \b
    Examples:
      aggregator show de254b8916e3a40b
      aggregator show de25 --html
    """
    from .export import entry_json
    from .history import load_entry, text_lines

    config = load(ctx)
    with _open_existing_archive(config) as archive:
        stored = load_entry(archive, entry)
    if as_json:
        click.echo(json.dumps(entry_json(stored), ensure_ascii=False, indent=2))
        return
    click.echo(stored.title or "(untitled)")
    click.echo(f"id:        {stored.id}")
    click.echo(f"category:  {stored.category}")
    click.echo(f"feed:      {stored.feed_title + ' ' if stored.feed_title else ''}<{stored.feed_url}>")
    click.echo(f"link:      {stored.link}")
    if stored.author:
        click.echo(f"author:    {stored.author}")
    flag = f"  ({stored.date_flag} date: first seen used)" if stored.date_flag else ""
    click.echo(f"published: {stored.published:%Y-%m-%d %H:%M:%S %z}{flag}")
    if stored.updated:
        click.echo(f"updated:   {stored.updated:%Y-%m-%d %H:%M:%S %z}")
    if stored.tags:
        click.echo(f"tags:      {', '.join(stored.tags)}")
    for enclosure in stored.enclosures:
        click.echo(f"enclosure: {enclosure.url} {enclosure.type}".rstrip())
    seen = f"{stored.first_seen:%Y-%m-%d %H:%M:%S %z} .. {stored.last_seen:%Y-%m-%d %H:%M:%S %z}"
    click.echo(f"seen:      {seen}")
    revisions = f"  (see `aggregator history {stored.id[:8]}`)" if stored.revision > 1 else ""
    click.echo(f"revision:  {stored.revision}{revisions}")
    click.echo("")
    body = stored.content or stored.summary
    click.echo(body if as_html else "\n\n".join(text_lines(body)))


@main.command("history")
@click.argument("entry")
@click.option("--html", "as_html", is_flag=True, help="Diff the stored HTML instead of its plain text.")
@click.option("--json", "as_json", is_flag=True, help="Print every version as JSON on stdout (no diff).")
@click.option("--context", "context_lines", type=click.IntRange(0, 1000), default=3, show_default=True)
@click.pass_context
def history_command(ctx: click.Context, entry: str, as_html: bool, as_json: bool, context_lines: int) -> None:
    """Every version the archive kept of an entry, oldest first, with a unified diff between each version
    and the next (title, link, author, dates, tags and text).

    \b
    Examples:
      aggregator history de254b8916e3a40b
      aggregator history de25 --html | less -R
    """
    from itertools import pairwise

    from .history import diff_versions, load_entry, version_json, versions

    config = load(ctx)
    with _open_existing_archive(config) as archive:
        stored = load_entry(archive, entry)
        kept = versions(archive, stored)
    if as_json:
        click.echo(json.dumps([version_json(v) for v in kept], ensure_ascii=False, indent=2))
        return
    click.echo(f"{stored.title} [{stored.id}]: {len(kept)} version{'s' if len(kept) != 1 else ''}")
    for version in kept:
        until = version.superseded_at or "now"
        click.echo(f"  revision {version.revision}: {version.valid_from} .. {until}  {version.title}")
    for older, newer in pairwise(kept):
        click.echo("")
        for line in diff_versions(older, newer, html=as_html, context=context_lines):
            colour = "green" if line.startswith("+") else "red" if line.startswith("-") else None
            click.echo(click.style(line, fg=colour) if colour and not line.startswith(("+++", "---")) else line)


@main.command("daemon")
@click.option("--serve", is_flag=True, help="Also serve feeds and site over HTTP, plus /healthz and /metrics.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="One line per event: plain text, or a JSON object per line.",
)
@click.pass_context
def daemon_command(ctx: click.Context, serve: bool, log_format: str) -> None:
    """Poll every enabled feed on its own schedule until stopped, and republish what changed.

    SIGHUP reloads the config (an invalid one is logged and ignored); SIGTERM or Ctrl-C stops after
    in-flight polls finish (shutdown_grace), a second one at once. One daemon per archive.

    \b
    Examples:
      aggregator daemon
      aggregator --log-level debug daemon --serve --log-format json
    """
    from .daemon import run_daemon
    from .logsetup import configure_logging

    # A daemon's log is its only voice: unless --log-level was given, it says what each poll did.
    level_given = ctx.parent is not None and ctx.parent.get_parameter_source("log_level") not in (
        click.core.ParameterSource.DEFAULT,
        None,
    )
    level = logging.getLevelName(logging.getLogger().level) if level_given else "INFO"
    configure_logging(level, "json" if log_format == "json" else "text")
    ctx.exit(run_daemon(ctx.obj["config_path"], serve=serve))


@main.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of feed objects instead of a table.")
@click.pass_context
def status_command(ctx: click.Context, as_json: bool) -> None:
    """Every feed: category, last fetch, last status, consecutive errors, next due, entries, last error;
    then a summary line. Works beside a running daemon.

    \b
    Examples:
      aggregator status
      aggregator status --json | jq '.[] | select(.consecutive_errors > 0)'
    """
    from .metrics import feed_rows, status_table, summarize, summary_line

    config = load(ctx)
    statuses = []
    if config.settings.database_path.is_file():  # no archive yet: every configured feed is "never polled"
        with Archive.open(config.settings.database_path) as archive:
            statuses = archive.feed_statuses()
    rows = feed_rows(config, statuses)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if rows:
        click.echo(status_table(rows))
    click.echo(summary_line(summarize(rows)))
