"""The operator's toolbox on the command line: search, feeds, opml, export, show, history.

commands.py registers these on the `aggregator` group (`TOOLBOX_COMMANDS`); each is a thin wrapper around
its module (store.search, configuration.feeds_file, configuration.opml, store.export, store.history).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from aggregator.configuration.load import load_config
from aggregator.core.errors import AggregatorError, ConfigError
from aggregator.core.models import Config
from aggregator.core.redact import redact_url
from aggregator.store.archive import Archive


def _config(ctx: click.Context) -> Config:
    return load_config(ctx.obj["config_path"])


_DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z"]


def _open_existing_archive(config: Config) -> Archive:
    """The archive, which must exist already: reading commands never create an empty one by accident."""
    path = config.settings.database_path
    if not path.is_file():
        raise AggregatorError(f"no archive at {path} yet: run `aggregator fetch-now` first")
    return Archive.open_for_reading(path)


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


class _QueryCommand(click.Command):
    """A command whose query may begin with "-" (`search -draft`: entries without "draft"), which click
    would read as options: every word that is not one of the command's options is the query's, except a
    misspelt `--option` (a query word that must begin with "--" goes after `--`)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        takes_value = {
            name: not param.is_flag for param in self.params if isinstance(param, click.Option) for name in param.opts
        }
        takes_value |= dict.fromkeys(ctx.help_option_names, False)
        options: list[str] = []
        words: list[str] = []
        index = 0
        while index < len(args):
            arg = args[index]
            name, equals, _ = arg.partition("=")
            if arg == "--":
                words.extend(args[index + 1 :])
                break
            if name in takes_value:
                if takes_value[name] and not equals and index + 1 == len(args):
                    raise click.BadOptionUsage(name, f"Option '{name}' requires an argument.", ctx=ctx)
                value_follows = takes_value[name] and not equals
                options.extend(args[index : index + 2] if value_follows else [arg])
                index += 1 if value_follows else 0
            elif arg.startswith("--"):
                raise click.NoSuchOption(name, possibilities=[n for n in takes_value if n.startswith("--")], ctx=ctx)
            else:
                words.append(arg)
            index += 1
        return super().parse_args(ctx, [*options, "--", *words])


@click.command("search", cls=_QueryCommand)
@click.argument("query", nargs=-1, required=True)
@click.option("--category", shell_complete=_complete_categories, help="Only entries of this category.")
@click.option("--feed", "feed_url", shell_complete=_complete_feed_urls, help="Only entries of this feed (its URL).")
@click.option("--since", type=click.DateTime(_DATE_FORMATS), help="Only entries published since (UTC unless offset).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True, help="At most this many.")
@click.option("--sort", type=click.Choice(["rank", "date"]), default="rank", show_default=True, help="Best or newest.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as a JSON array on stdout.")
@click.pass_context
def search_command(
    ctx: click.Context,
    query: tuple[str, ...],
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
    "double quotes" keep a phrase; a OR b finds either; NOT a, or -a, leaves out entries with a.
    Results are ranked (bm25, title matches count more) or sorted by
    date, with a snippet around the match. An entry whose current text no longer matches but an
    earlier version did is marked so.

    \b
    Examples:
      aggregator search 征管改革
      aggregator search "conditional get" --category tech --since 2024-01-01
      aggregator search 税务 --limit 5 --json | jq '.[].link'
      aggregator search 'archiv*' --sort date
      aggregator search '税务 -征管改革'
    """
    from dataclasses import asdict

    from aggregator.store.search import SortOrder, search

    config = _config(ctx)
    _check_category(config, category)
    with _open_existing_archive(config) as archive:
        configured = {f.url for f in config.feeds}
        # A feed removed from the config still counts while the archive holds its entries.
        if feed_url is not None and feed_url not in configured and not archive.count_entries(feed_url=feed_url):
            raise ConfigError(f"{config.path}: unknown feed {feed_url!r} (not in the config nor in the archive)")
        order: SortOrder = "date" if sort == "date" else "rank"
        result = search(
            archive, " ".join(query), category=category, feed_url=feed_url, since=since, limit=limit, sort=order
        )
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


@click.group("feeds")
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
    config = _config(ctx)
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
    from aggregator.configuration.feeds_file import FeedsFile, NewFeed
    from aggregator.fetching.discover import discover as discover_feed

    feeds_file = FeedsFile(ctx.obj["config_path"])
    _check_category(feeds_file.config, category)
    feed_url = url
    # Already there: say so before downloading anything (offline, discovery would fail first).
    feeds_file.add_feeds([NewFeed(url=url, category=category, title=title)], dry_run=True)
    if discover:
        found = discover_feed(url, feeds_file.config.settings)
        if not found.is_feed:
            if not found.feeds and found.refused:
                raise AggregatorError(
                    f"{url}: the page's feed link {found.refused[0]} is on a private or local address, which "
                    "discovery does not follow (add that host:port to allow_hosts, or add the feed's URL itself)"
                )
            if not found.feeds:
                raise AggregatorError(f'{url}: no feed found (the page declares no <link rel="alternate"> feed)')
            feed_url = found.feeds[0].url
            click.echo(redact_url(f"discovered {feed_url} ({found.feeds[0].kind}) on {url}"), err=True)
            for other in found.feeds[1:]:
                click.echo(redact_url(f"  also offered: {other.url} ({other.kind}) {other.title}".rstrip()), err=True)
    feeds_file.add_feeds([NewFeed(url=feed_url, category=category, title=title)])
    feeds_file.save()
    click.echo(f"added {redact_url(feed_url)} to {category} in {feeds_file.path}", err=True)


@feeds_group.command("remove")
@click.argument("url", shell_complete=_complete_feed_urls)
@click.pass_context
def feeds_remove(ctx: click.Context, url: str) -> None:
    """Remove a feed from feeds.yaml. Its archived entries stay in the archive.

    \b
    Example:
      aggregator feeds remove https://example.org/feed.xml
    """
    from aggregator.configuration.feeds_file import FeedsFile

    feeds_file = FeedsFile(ctx.obj["config_path"])
    feeds_file.remove_feed(url)
    feeds_file.save()
    click.echo(f"removed {redact_url(url)} from {feeds_file.path} (its archived entries are kept)", err=True)


def _set_enabled(ctx: click.Context, url: str, enabled: bool) -> None:
    from aggregator.configuration.feeds_file import FeedsFile

    feeds_file = FeedsFile(ctx.obj["config_path"])
    word = "enabled" if enabled else "disabled"
    if feeds_file.set_enabled(url, enabled):
        feeds_file.save()
        click.echo(f"{word} {redact_url(url)}", err=True)
    else:
        click.echo(f"{redact_url(url)} was already {word}", err=True)


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


@click.group("opml")
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
    from aggregator.configuration.feeds_file import FeedsFile
    from aggregator.configuration.opml import plan_import, read_opml

    feeds_file = FeedsFile(ctx.obj["config_path"])
    feeds = read_opml(file.read(), getattr(file, "name", "OPML"))
    plan = plan_import(feeds_file.config, feeds, category)
    for line in plan.skipped:
        click.echo(f"skipped {line}", err=True)
    for new_category in plan.categories:
        click.echo(f"new category {new_category.slug}: {new_category.title}", err=True)
    for feed in plan.feeds:
        click.echo(f"add [{feed.category}] {redact_url(feed.url)}", err=True)
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
    from aggregator.configuration.opml import export_opml

    config = _config(ctx)
    info: dict[str, tuple[str, str]] = {}
    if config.settings.database_path.is_file():
        with Archive.open_for_reading(config.settings.database_path) as archive:
            for url, title, site_url in archive.db.execute("SELECT url, title, site_url FROM feeds"):
                info[url] = (title or "", site_url or "")
    click.echo(export_opml(config, info).decode("utf-8"), nl=False)


@click.command("export")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option("--category", shell_complete=_complete_categories, help="Only entries of this category.")
@click.option("--since", type=click.DateTime(_DATE_FORMATS), help="Only entries published since (UTC unless offset).")
@click.option(
    "--excel",
    is_flag=True,
    help="CSV for spreadsheets: a UTF-8 byte order mark (Excel then reads CJK right) and a ' before any cell "
    "that would run as a formula.",
)
@click.pass_context
def export_command(ctx: click.Context, fmt: str, category: str | None, since: Any, excel: bool) -> None:
    """Write archived entries to stdout, newest first, as JSON Lines (one entry per line) or CSV (tags and
    enclosures as JSON inside their cells). Dates keep the source's own UTC offset.

    \b
    Examples:
      aggregator export > archive.jsonl
      aggregator export --format csv --category zhongguoshuiwubao --since 2022-03-01 > tax.csv
      aggregator export | jq -r 'select(.revision > 1) | .link'
      aggregator export --format csv --excel > archive.csv
    """
    from aggregator.store.export import write_export

    config = _config(ctx)
    _check_category(config, category)
    if excel and fmt != "csv":
        raise ConfigError("--excel is for --format csv")
    with _open_existing_archive(config) as archive:
        count = write_export(
            archive, sys.stdout, "csv" if fmt == "csv" else "jsonl", category, since, spreadsheet=excel
        )
    click.echo(f"exported {count} entries", err=True)


@click.command("show")
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
    from aggregator.store.export import entry_json
    from aggregator.store.history import load_entry, text_lines

    config = _config(ctx)
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
    if stored.date_flag == "zone":
        flag = "  (its zone name is ambiguous or unknown: read in the feed's timezone)"
    else:
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
    if stored.summary and stored.content:  # both given by the source: the summary first, as readers do
        click.echo(stored.summary if as_html else "\n\n".join(text_lines(stored.summary)))
        click.echo("\n---\n")
    body = stored.content or stored.summary
    click.echo(body if as_html else "\n\n".join(text_lines(body)))


@click.command("history")
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

    from aggregator.store.history import diff_versions, load_entry, version_json, versions

    config = _config(ctx)
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


TOOLBOX_COMMANDS = (search_command, feeds_group, opml_group, export_command, show_command, history_command)
