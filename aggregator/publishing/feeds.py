"""Republish the archive as feeds for subscribers: per category and "all", Atom 1.0 + RSS 2.0 (feedgen) and
JSON Feed 1.1, with RFC 5005 archive pages so a subscriber can backfill every entry ever stored.

Documents are rendered by `feed_documents`. Layout under `archive_dir/feeds/` (URLs are the same under `base_url`):

    <slug>.atom  <slug>.rss  <slug>.json      the subscription documents: the newest `feed_entries` entries
    all.atom     all.rss     all.json         the same over every category
    archive/<slug>/<n>.atom                   RFC 5005 archive pages, n = 1 is the oldest
    index.opml                                every subscription document, for readers to import

Entries are paged in *archive order* (when the archive first stored them, then by date): page n holds entries
(n-1)*N+1 .. n*N of that order, and only full pages are published. A late entry with an old date therefore
lands in the newest page, never in the middle of a page a subscriber already walked. Each page links the one
before it (prev-archive) and the one after it (next-archive), so a full page changes once more, when the next
page is made, and then never again unless one of its entries is edited at the source: its bytes, ETag and
Last-Modified stay put. The subscription document holds the last N entries of the same order, so the archive
pages plus the subscription document always cover every entry.

Nothing is stamped with "now": a document's date is its newest entry's, so regenerating an unchanged feed
gives identical bytes, which `write_atomic` then leaves alone (stable ETag / Last-Modified for subscribers).
A small state file remembers a fingerprint of what each document was made from, so an incremental publish
renders only the documents whose entries changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aggregator import __version__
from aggregator.core.atomic import AtomicBatch, write_atomic
from aggregator.core.models import Config
from aggregator.publishing.feed_documents import (
    ALL,
    FEED_FORMATS,
    FeedInfo,
    archive_page_path,
    feed_path,
    feed_url,
    feeds_dir,
    render_atom,
    render_json_feed,
    render_rss,
    xml_text,
)
from aggregator.publishing.opml_listing import Outline, render_opml

if TYPE_CHECKING:
    from aggregator.store.archive import Archive

log = logging.getLogger("aggregator.publish")

STATE_FILE = ".publish-state.json"
LOCK_FILE = ".publish.lock"
# 2: one entry per id, sources credited as authors, edits dated; 3: secrets masked; 4: next-archive links
RENDER_VERSION = "4"


@dataclass
class PublishReport:
    """What a publish run did. Paths are absolute."""

    written: list[Path] = field(default_factory=list)
    unchanged: int = 0  # rendered, but the bytes on disk were already the same
    skipped: int = 0  # not rendered at all: nothing it is made from changed since the last publish
    feeds: list[str] = field(default_factory=list)  # slugs published ("all" included)
    removed: list[Path] = field(default_factory=list)  # documents of categories or pages that are no more

    def summary(self) -> str:
        removed = f", {len(self.removed)} no longer published removed" if self.removed else ""
        return (
            f"Published {len(self.feeds)} feeds: {len(self.written)} files written, "
            f"{self.unchanged} unchanged, {self.skipped} not rendered (nothing they show changed){removed}."
        )


# --- what each document is made of ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Row:
    """The light columns of an entry: enough to order, page and fingerprint without loading its content."""

    id: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class _Document:
    kind: str  # "current" or "archive"
    slug: str
    number: int  # archive page number; for "current", the number of full archive pages
    ids: tuple[str, ...]
    fingerprint: str

    @property
    def outputs(self) -> tuple[str, ...]:
        if self.kind == "archive":
            return (archive_page_path(self.slug, self.number),)
        return tuple(feed_path(self.slug, fmt) for fmt in FEED_FORMATS)


def _archive_rows(config: Config, archive: Archive, category: str | None) -> list[_Row]:
    """Entries of a category (None = all) in archive order: first stored, then by date, then id.

    Reads only light columns straight from the archive's connection: loading 100,000 full entries to find
    out that nothing changed would cost seconds.
    """
    sql = (
        "SELECT e.id, e.category, e.feed_url, e.content_hash, e.revision, e.published, e.updated, e.date_flag,"
        " f.title, f.site_url FROM entries e JOIN feeds f ON f.url = e.feed_url"
        + (" WHERE e.category = ?" if category is not None else "")
        + " ORDER BY e.first_seen, e.published_utc, e.id"
    )
    params = [category] if category is not None else []
    return [_Row(row[0], "\x1f".join(str(value) for value in row)) for row in archive.db.conn.execute(sql, params)]


def _plan(slug: str, rows: list[_Row], page_size: int, context: str) -> list[_Document]:
    def fingerprint(kind: str, number: int, members: Sequence[_Row]) -> str:
        digest = hashlib.sha256(f"{context}\x1e{kind}\x1e{number}".encode())
        for row in members:
            digest.update(b"\x1e" + row.fingerprint.encode())
        return digest.hexdigest()

    full_pages = len(rows) // page_size
    documents = []
    for number in range(1, full_pages + 1):
        members = rows[(number - 1) * page_size : number * page_size]
        # The newest page gains its next-archive link when the page after it is made: once, and never again.
        kind = "archive" if number < full_pages else "archive, the newest"
        documents.append(
            _Document("archive", slug, number, tuple(r.id for r in members), fingerprint(kind, number, members))
        )
    newest = rows[-page_size:]
    documents.append(
        _Document("current", slug, full_pages, tuple(r.id for r in newest), fingerprint("current", full_pages, newest))
    )
    return documents


def _context_fingerprint(config: Config) -> str:
    """Everything besides the entries that shows in a document: any change renders every document again."""
    settings = config.settings
    payload = [
        RENDER_VERSION,
        __version__,
        settings.base_url,
        settings.feed_entries,
        sorted((c.slug, c.title, c.description, list(c.tags)) for c in config.categories.values()),
        sorted((f.url, list(config.feed_tags(f))) for f in config.feeds if f.category in config.categories),
    ]
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()


def publish_feeds(
    config: Config, archive: Archive, categories: set[str] | None = None, *, force: bool = False
) -> PublishReport:
    """Regenerate the republished feeds from the archive.

    `categories=None`: every configured category and "all". A set: only those categories, plus "all" when
    the set is not empty (fetch-now passes the categories that gained or changed entries). Documents whose
    entries did not change since the last publish are not rendered; `force=True` renders everything (and
    still writes only files whose bytes changed). Safe to call after every fetch: concurrent publishers
    take turns on a lock file.
    """
    report = PublishReport()
    if categories is None:
        # The site keeps listing a category removed from feeds.yaml while the archive holds its entries,
        # and links its feed: that feed goes on too (it no longer changes).
        remembered = {row[0] for row in archive.db.conn.execute("SELECT DISTINCT category FROM entries")}
        slugs = [*sorted(set(config.categories) | remembered - {ALL}), ALL]
    else:
        slugs = sorted(slug for slug in categories if slug in config.categories)
        if categories:
            slugs.append(ALL)
    root = feeds_dir(config)
    root.mkdir(parents=True, exist_ok=True)
    with _publish_lock(root / LOCK_FILE):
        state_path = root / STATE_FILE
        state = {} if force else _load_state(state_path)
        context = _context_fingerprint(config)
        feed_tags = {f.url: config.feed_tags(f) for f in config.feeds if f.category in config.categories}
        published = {"index.opml", STATE_FILE, LOCK_FILE}
        with AtomicBatch() as batch:  # every document durable at once, before the state that names them
            for slug in slugs:
                published |= _publish_slug(config, archive, slug, context, feed_tags, state, report, batch)
                report.feeds.append(slug)
            _write(batch, root / "index.opml", _opml(config), report)
        if categories is None:  # every document is known only when every category was published
            _remove_unpublished(root, published, state, report)
        _save_state(state_path, state)
    return report


def _remove_unpublished(root: Path, published: set[str], state: dict[str, str], report: PublishReport) -> None:
    """Documents no publish makes any more: a renamed category's, archive pages past the last (a larger
    feed_entries). Left, subscribers of a renamed category would read a frozen feed of entries that had
    moved, and archive pages would chain into ones no feed links."""
    documents = [path for pattern in ("*.atom", "*.rss", "*.json") for path in root.glob(pattern)]
    documents += (root / "archive").rglob("*.atom")
    for path in documents:
        relative = path.relative_to(root).as_posix()
        if relative not in published and (path.is_file() or path.is_symlink()):
            path.unlink()
            state.pop(relative, None)
            report.removed.append(path)
    archives = root / "archive"
    if archives.is_dir():
        for folder in archives.iterdir():
            with contextlib.suppress(OSError):  # only an empty one goes
                folder.rmdir()


def _publish_slug(
    config: Config,
    archive: Archive,
    slug: str,
    context: str,
    feed_tags: dict[str, tuple[str, ...]],
    state: dict[str, str],
    report: PublishReport,
    batch: AtomicBatch,
) -> set[str]:
    """Publish one category's documents (those whose entries changed); return every document it has."""
    settings = config.settings
    root = feeds_dir(config)
    if slug == ALL:
        info = FeedInfo(ALL, "All categories", "Every archived entry, all categories.", settings.base_url)
    elif slug in config.categories:
        category = config.categories[slug]
        info = FeedInfo(slug, category.title, category.description, settings.base_url)
    else:  # only the archive remembers it, as the site does: titled by its slug
        info = FeedInfo(slug, slug, "", settings.base_url)
    rows = _archive_rows(config, archive, None if slug == ALL else slug)
    documents = _plan(slug, rows, settings.feed_entries, context)
    for document in documents:
        key = document.outputs[0]
        if state.get(key) == document.fingerprint and all((root / out).is_file() for out in document.outputs):
            report.skipped += len(document.outputs)
            continue
        entries = list(archive.entries(ids=list(document.ids))) if document.ids else []
        prev_archive = archive_page_path(slug, document.number - 1 if document.kind == "archive" else document.number)
        if document.kind == "archive":
            newest = document.number == len(rows) // settings.feed_entries
            outputs = {
                key: render_atom(
                    info,
                    entries,
                    feed_tags,
                    self_path=key,
                    prev_archive=prev_archive if document.number > 1 else None,
                    next_archive=None if newest else archive_page_path(slug, document.number + 1),
                    is_archive=True,
                )
            }
        else:
            outputs = {
                feed_path(slug, "atom"): render_atom(
                    info,
                    entries,
                    feed_tags,
                    self_path=feed_path(slug, "atom"),
                    prev_archive=prev_archive if document.number >= 1 else None,
                    is_archive=False,
                ),
                feed_path(slug, "rss"): render_rss(info, entries, feed_tags, self_path=feed_path(slug, "rss")),
                feed_path(slug, "json"): render_json_feed(info, entries, feed_tags, self_path=feed_path(slug, "json")),
            }
        for relative, data in outputs.items():
            _write(batch, root / relative, data, report)
        state[key] = document.fingerprint
    return {output for document in documents for output in document.outputs}


def _write(batch: AtomicBatch, path: Path, data: bytes, report: PublishReport) -> None:
    if batch.write(path, data):
        report.written.append(path)
    else:
        report.unchanged += 1


def _opml(config: Config) -> bytes:
    base = config.settings.base_url
    outlines = [
        Outline(
            title=xml_text(category.title) or slug,
            xml_url=feed_url(base, feed_path(slug, "atom")),
            html_url=FeedInfo(slug, "", "", base).home_page,
            description=xml_text(category.description),
        )
        for slug, category in sorted(config.categories.items())
    ]
    outlines.append(Outline(title="All categories", xml_url=feed_url(base, feed_path(ALL, "atom")), html_url=base))
    return render_opml("Republished feeds", outlines)


def _load_state(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    documents = data.get("documents") if isinstance(data, dict) else None
    return {str(k): str(v) for k, v in documents.items()} if isinstance(documents, dict) else {}


def _save_state(path: Path, state: dict[str, str]) -> None:
    write_atomic(path, json.dumps({"documents": dict(sorted(state.items()))}, indent=0).encode())


@contextlib.contextmanager
def _publish_lock(path: Path) -> Iterator[None]:
    """One publisher at a time (fetch-now and the daemon may overlap); no-op where fcntl is missing."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
