"""The `aggregator` command line. Every error a user can cause is one line on stderr, never a traceback."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from aggregator import __version__
from aggregator.cli.fetch_run import run_fetch
from aggregator.cli.toolbox import TOOLBOX_COMMANDS
from aggregator.configuration.load import load_config
from aggregator.core.errors import AggregatorError, ConfigError
from aggregator.core.models import Config
from aggregator.core.redact import redact_url
from aggregator.store.archive import Archive

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
            elif index + 1 == len(args):
                # Moved to the front, it would take the command's name for its value.
                raise click.BadOptionUsage(name, f"Option '{name}' requires an argument.")
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
            click.echo(redact_url(f"error: {error}"), err=True)
            ctx.exit(EXIT_CONFIG)
        except AggregatorError as error:
            click.echo(redact_url(f"error: {error}"), err=True)  # it may name a feed's address
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


def setup_logging(level: str) -> None:
    from aggregator.cli.logsetup import RedactingFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(levelname)s %(message)s"))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler])


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


@main.command("fetch-now")
@click.argument("urls", nargs=-1)
@click.option("--category", help="Poll only the feeds of this category.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
@click.pass_context
def fetch_now(ctx: click.Context, urls: tuple[str, ...], category: str | None, progress: bool | None) -> None:
    """Poll every enabled feed once, now (or only URLS, or one --category), and store what is new.

    A feed that answered 410 Gone is skipped, unless named: naming it polls it again, and once it
    answers anything but 410 it is polled as before (a running daemon picks it up within seconds).

    Exit status: 0 when the run completed (failed feeds are listed), 1 when nothing could be fetched
    or the archive could not be written, 2 for configuration errors.

    \b
    Examples:
      aggregator fetch-now
      aggregator fetch-now --category zhongguoshuiwubao
      aggregator fetch-now https://example.org/feed.xml
    """
    config = load(ctx)
    if not config.feeds:
        click.echo(f"warning: {config.path} lists no feeds (add one: aggregator feeds add URL --category C)", err=True)
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
    from aggregator.cli.demo import run_demo

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
    from aggregator.publishing.outputs import publish_outputs

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
    from aggregator.serving.app import run_server

    config = load(ctx)
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
    run_server(config, host, port, log_level=level if level in ("debug", "info", "warning", "error") else "warning")


# --- the operator's toolbox: search, feeds, opml, export, show, history -------------------------------------


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
    from aggregator.cli.logsetup import configure_logging
    from aggregator.daemon.runner import catch_early_reloads, run_daemon

    catch_early_reloads()

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
    from aggregator.serving.status import feed_rows, status_table, summarize, summary_line

    config = load(ctx)
    statuses = []
    if config.settings.database_path.is_file():  # no archive yet: every configured feed is "never polled"
        with Archive.open_for_reading(config.settings.database_path) as archive:
            statuses = archive.feed_statuses()
    rows = feed_rows(config, statuses)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if rows:
        click.echo(status_table(rows))
    click.echo(summary_line(summarize(rows)))


for _command in TOOLBOX_COMMANDS:
    main.add_command(_command)
