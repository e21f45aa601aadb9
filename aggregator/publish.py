"""Republish the archive as feeds for subscribers: per category and "all", Atom 1.0 + RSS 2.0 (feedgen) and
JSON Feed 1.1, with RFC 5005 archive pages so a subscriber can backfill every entry ever stored.

The only module that imports feedgen. Layout under `archive_dir/feeds/` (URLs are the same under `base_url`):

    <slug>.atom  <slug>.rss  <slug>.json      the subscription documents: the newest `feed_entries` entries
    all.atom     all.rss     all.json         the same over every category
    archive/<slug>/<n>.atom                   RFC 5005 archive pages, n = 1 is the oldest
    index.opml                                every subscription document, for readers to import

Entries are paged in *archive order* (when the archive first stored them, then by date): page n holds entries
(n-1)*N+1 .. n*N of that order, and only full pages are published. A late entry with an old date therefore
lands in the newest page, never in the middle of a page a subscriber already walked, and a full page never
changes again unless one of its entries is edited at the source. The subscription document holds the last N
entries of the same order, so the archive pages plus the subscription document always cover every entry.

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
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator

from . import __version__
from .atomic import write_atomic
from .models import Config, Enclosure, StoredEntry
from .opml import Outline, render_opml
from .redact import fingerprint_secrets, redact_url
from .sanitize import html_to_text, remove_control_characters

if TYPE_CHECKING:
    from .store import Archive

log = logging.getLogger("aggregator.publish")

ALL = "all"
FEEDS_DIR = "feeds"
STATE_FILE = ".publish-state.json"
LOCK_FILE = ".publish.lock"
FEED_FORMATS = {
    "atom": "application/atom+xml",
    "rss": "application/rss+xml",
    "json": "application/feed+json",
}
HISTORY_NS = "http://purl.org/syndication/history/1.0"
DC_NS = "http://purl.org/dc/elements/1.1/"
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
# Bump when the rendering changes, so every document is rendered again once.
RENDER_VERSION = "3"  # 2: one entry per id, sources credited as authors, edits dated; 3: secrets masked
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(.+)$", re.DOTALL)
_NOT_IN_IRI = re.compile(r"[\s<>\"{}|\\^`]")
_TAB_OR_NEWLINE = re.compile(r"[\t\r\n]")
_INVALID_IN_URL = re.compile(r"[\x00-\x20\x7f<>\"{}|\\^`]")
_DNS_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$")
# Our own pseudo-scheme for entries that had neither id nor link (normalize._entry_key): not an IRI to share.
_PRIVATE_SCHEMES = {"sha256"}


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


# --- paths and identifiers ------------------------------------------------------------------------


def feeds_dir(config: Config) -> Path:
    return config.settings.archive_dir / FEEDS_DIR


def feed_path(slug: str, fmt: str) -> str:
    """Path of a subscription document relative to the feeds folder (and to `<base_url>feeds/`)."""
    return f"{slug}.{fmt}"


def archive_page_path(slug: str, number: int) -> str:
    return f"archive/{slug}/{number}.atom"


def feed_url(base_url: str, relative: str) -> str:
    """Absolute URL of a published file, e.g. feed_url(base, feed_path("tech", "atom"))."""
    return f"{base_url.rstrip('/')}/{FEEDS_DIR}/{relative}"


def entry_iri(feed_url_: str, key: str, base_url: str) -> str:
    """The republished id of an entry: its original id when that is an absolute IRI (so a reader that also
    follows the source sees no duplicate), else a stable `tag:` URI made from the source feed and that id."""
    if _is_absolute_iri(key):
        return key
    parts = urlsplit(feed_url_)
    host = (parts.hostname or "").lower()
    if not _DNS_NAME.match(host):
        host = (urlsplit(base_url).hostname or "localhost").lower()
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    query = fingerprint_secrets(f"?{parts.query}") if parts.query else ""  # no token in ids, one id per token
    where = port + (parts.path or "/") + query
    return f"tag:{host},2000:{quote(where, safe='/:?=&;@!$+,.-_~')}:{quote(key, safe='')}"


def _link(url: str) -> str:
    """A stored link as a valid IRI, read as a browser reads it: tabs and line breaks dropped, the ends
    trimmed, backslashes taken as slashes, and the few other ASCII characters no IRI may hold (a space,
    quotes, angle brackets...) percent-encoded; every other character as it is."""
    url = _TAB_OR_NEWLINE.sub("", url).strip().replace("\\", "/")
    return _INVALID_IN_URL.sub(lambda match: f"%{ord(match.group()):02X}", url)


def _is_absolute_iri(value: str) -> bool:
    match = _SCHEME.match(value)
    if not match or _NOT_IN_IRI.search(value) or value != remove_control_characters(value):
        return False
    scheme, rest = match.group(1).lower(), match.group(2)
    if scheme in _PRIVATE_SCHEMES:
        return False
    if scheme in ("http", "https"):
        return rest.startswith("//") and len(rest) > 2
    return True


def _xml(text: str) -> str:
    """Text with the characters XML 1.0 forbids removed: lxml refuses them, and so do readers."""
    return remove_control_characters(text) if text else ""


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
        documents.append(
            _Document("archive", slug, number, tuple(r.id for r in members), fingerprint("archive", number, members))
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


# --- rendering -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedInfo:
    slug: str
    title: str
    description: str
    base_url: str

    @property
    def feed_id(self) -> str:
        return feed_url(self.base_url, feed_path(self.slug, "atom"))

    @property
    def home_page(self) -> str:
        """The site page that shows the same entries: the category page, or the home page for "all"."""
        return self.base_url if self.slug == ALL else f"{self.base_url.rstrip('/')}/category/{self.slug}.html"


class _HistoryExtension(BaseExtension):
    """Feed-level additions feedgen has no setter for: RFC 5005 `<fh:archive/>` on archive pages."""

    def __init__(self) -> None:
        self.archive = False

    def extend_ns(self) -> dict[str, str]:
        return {"fh": HISTORY_NS}

    def extend_atom(self, feed: Any) -> Any:
        if self.archive:
            feed.append(feed.makeelement(f"{{{HISTORY_NS}}}archive", {}))
        return feed


class _AtomEntryExtension(BaseEntryExtension):
    """Entry-level Atom additions: a full `<source>` (feedgen writes only title and link) and empty titles."""

    def __init__(self) -> None:
        self.entry: StoredEntry | None = None

    def extend_atom(self, element: Any) -> Any:
        entry = self.entry
        if entry is None:
            return element
        if not entry.title:
            element.find("title").text = ""
        source = element.makeelement("source", {})
        source_url = redact_url(entry.feed_url)  # a private feed's password or token stays private
        _sub(source, "id", source_url)
        _sub(source, "title", _xml(entry.feed_title) or source_url)
        _sub(source, "link", None, rel="self", href=source_url)
        if entry.feed_site_url:
            _sub(source, "link", None, rel="alternate", href=_link(entry.feed_site_url))
        if not entry.author:
            # An entry without an author takes its source's (RFC 4287 4.2.1), and only without one the
            # republishing feed's: the source feed, not this archive, wrote it.
            author = _sub(source, "author", None)
            _sub(author, "name", _xml(entry.feed_title) or urlsplit(entry.feed_url).hostname or source_url)
        element.append(source)
        for enclosure in entry.enclosures:
            _sub(element, "link", None, rel="enclosure", **_enclosure_attributes(enclosure), href=_link(enclosure.url))
        return element


class _DublinCoreExtension(BaseExtension):
    def extend_ns(self) -> dict[str, str]:
        return {"dc": DC_NS}


class _RssEntryExtension(BaseEntryExtension):
    """Entry-level RSS additions: dc:creator (RSS <author> must be an e-mail address), <source url>, and an
    item with no title keeps no placeholder title when it has a description."""

    def __init__(self) -> None:
        self.entry: StoredEntry | None = None

    def extend_rss(self, element: Any) -> Any:
        entry = self.entry
        if entry is None:
            return element
        if not entry.title:
            title = element.find("title")
            if element.find("description") is not None:
                element.remove(title)
            else:
                title.text = entry.link or "(untitled)"
        if entry.author:
            _sub(element, f"{{{DC_NS}}}creator", _xml(entry.author))
        source_url = redact_url(entry.feed_url)
        _sub(element, "source", _xml(entry.feed_title) or source_url, url=source_url)
        if entry.enclosures:  # RSS 2.0 allows one enclosure per item: the first
            enclosure = entry.enclosures[0]
            _sub(element, "enclosure", None, url=_link(enclosure.url), **_enclosure_attributes(enclosure))
        return element


def _enclosure_attributes(enclosure: Enclosure) -> dict[str, str]:
    return {"type": _xml(enclosure.type) or "application/octet-stream", "length": str(enclosure.length)}


def _sub(parent: Any, tag: str, text: str | None, **attributes: str) -> Any:
    child = parent.makeelement(tag, attributes)
    child.text = text
    parent.append(child)
    return child


def modified(entry: StoredEntry) -> datetime:
    """When the entry last changed, as a reader should see it: the source's own updated date (else its
    published one), or, for an entry edited at the source after we first stored it, the moment the edit
    was stored when that is later (sources often edit without touching their dates), in the entry's offset."""
    date = entry.updated or entry.published
    if entry.revision > 1 and entry.changed_at is not None:
        edited = entry.changed_at.astimezone(date.tzinfo).replace(microsecond=0)
        if edited > date:
            return edited
    return date


def _distinct(entries: Sequence[StoredEntry], base_url: str) -> list[tuple[str, StoredEntry]]:
    """(republished id, entry), one entry per id. Two sources can carry the same item under the same
    global id (a syndicated post, one feed subscribed at two addresses): to a reader those are one entry
    (RFC 4287 4.1.1; JSON Feed ids must be unique), so a document keeps the copy changed last."""
    chosen: dict[str, StoredEntry] = {}
    for entry in entries:
        identity = entry_iri(entry.feed_url, entry.key, base_url)
        other = chosen.get(identity)
        if other is None or (modified(entry).astimezone(UTC), entry.id) > (modified(other).astimezone(UTC), other.id):
            chosen[identity] = entry
    return [(identity, entry) for identity, entry in chosen.items()]


def _newest_date(entries: Sequence[StoredEntry]) -> datetime:
    """The feed's date: the newest entry date in the document (in that entry's own offset)."""
    dates = [modified(entry) for entry in entries]
    return max(dates, key=lambda d: (d.astimezone(UTC), d.utcoffset())) if dates else _EPOCH


def _categories(entry: StoredEntry, feed_tags: dict[str, tuple[str, ...]]) -> list[str]:
    """The category slug first, then the source's own categories and the configured tags, without repeats."""
    seen: dict[str, None] = {entry.category: None}
    for tag in (*entry.tags, *feed_tags.get(entry.feed_url, ())):
        cleaned = _xml(tag).strip()
        if cleaned:
            seen.setdefault(cleaned, None)
    return list(seen)


def _new_generator(info: FeedInfo, entries: Sequence[StoredEntry]) -> FeedGenerator:
    generator = FeedGenerator()
    generator.register_extension("atom_extras", _HistoryExtension, _AtomEntryExtension, atom=True, rss=False)
    generator.register_extension("rss_extras", _DublinCoreExtension, _RssEntryExtension, atom=False, rss=True)
    generator.id(info.feed_id)
    generator.title(_xml(info.title) or info.slug)
    generator.description(_xml(info.description) or _xml(info.title) or info.slug)
    generator.author(name=urlsplit(info.base_url).hostname or "aggregator")
    generator.generator("aggregator", version=__version__)
    generator.updated(_newest_date(entries))
    return generator


def _add_entries(
    generator: FeedGenerator, entries: Sequence[StoredEntry], info: FeedInfo, feed_tags: dict[str, tuple[str, ...]]
) -> None:
    for identity, entry in _distinct(entries, info.base_url):
        item = generator.add_entry(order="append")
        item.atom_extras.entry = entry
        item.rss_extras.entry = entry
        item.guid(identity, permalink=identity == entry.link and identity.startswith(("http://", "https://")))
        item.title(_xml(entry.title) or "(untitled)")
        if entry.link:
            item.link(href=_link(entry.link), rel="alternate")
        item.updated(modified(entry))
        if entry.date_flag != "missing":
            item.published(entry.published)
        if entry.summary:
            item.summary(_xml(entry.summary), type="html")
        if entry.content or not (entry.link or entry.summary):
            # Atom needs content or an alternate link; an entry with neither gets an empty content element.
            item.content(_xml(entry.content), type="html")
        elif not entry.link:
            item.content(_xml(entry.summary), type="html")
        if entry.author:
            item.author(name=_xml(entry.author))
        for term in _categories(entry, feed_tags):
            if term == entry.category:
                item.category(term=term, scheme=info.base_url)
            else:
                item.category(term=term)
        # Enclosures are added by the entry extensions: feedgen 1.0 drops rel/type/length of Atom entry links.


def render_atom(
    info: FeedInfo,
    entries: Sequence[StoredEntry],
    feed_tags: dict[str, tuple[str, ...]],
    *,
    self_path: str,
    prev_archive: str | None,
    is_archive: bool,
) -> bytes:
    generator = _new_generator(info, entries)
    generator.atom_extras.archive = is_archive
    generator.link(href=feed_url(info.base_url, self_path), rel="self", type=FEED_FORMATS["atom"])
    if is_archive:
        generator.link(href=feed_url(info.base_url, feed_path(info.slug, "atom")), rel="current")
    if prev_archive:
        generator.link(href=feed_url(info.base_url, prev_archive), rel="prev-archive")
    generator.link(href=info.home_page, rel="alternate", type="text/html")
    _add_entries(generator, entries, info, feed_tags)
    return bytes(generator.atom_str(pretty=True))


def render_rss(
    info: FeedInfo, entries: Sequence[StoredEntry], feed_tags: dict[str, tuple[str, ...]], *, self_path: str
) -> bytes:
    generator = _new_generator(info, entries)
    generator.link(href=feed_url(info.base_url, self_path), rel="self", type=FEED_FORMATS["rss"])
    generator.link(href=info.home_page, rel="alternate")  # the last link is RSS's <link>
    _add_entries(generator, entries, info, feed_tags)
    return bytes(generator.rss_str(pretty=True))


def render_json_feed(
    info: FeedInfo, entries: Sequence[StoredEntry], feed_tags: dict[str, tuple[str, ...]], *, self_path: str
) -> bytes:
    items = []
    for identity, entry in _distinct(entries, info.base_url):
        item: dict[str, Any] = {"id": identity}
        if entry.link:
            item["url"] = _link(entry.link)
        # JSON could carry control characters escaped, but readers choke on them as XML ones do.
        item["title"] = _xml(entry.title)
        item["content_html"] = _xml(entry.content or entry.summary)
        if entry.summary and entry.content:
            item["summary"] = html_to_text(entry.summary)
        if entry.date_flag != "missing":
            item["date_published"] = entry.published.isoformat()
        if entry.updated or entry.revision > 1:
            item["date_modified"] = modified(entry).isoformat()
        if entry.author:
            item["authors"] = [{"name": _xml(entry.author)}]
        item["tags"] = _categories(entry, feed_tags)
        if entry.enclosures:
            item["attachments"] = [
                {"url": _link(e.url), "mime_type": _xml(e.type) or "application/octet-stream"}
                | ({"size_in_bytes": e.length} if e.length else {})
                for e in entry.enclosures
            ]
        item["_source"] = {
            "title": _xml(entry.feed_title),
            "feed_url": redact_url(entry.feed_url),
            "home_page_url": _link(entry.feed_site_url),
        }
        items.append(item)
    document = {
        "version": JSON_FEED_VERSION,
        "title": _xml(info.title) or info.slug,
        "home_page_url": info.home_page,
        "feed_url": feed_url(info.base_url, self_path),
        "description": _xml(info.description) or _xml(info.title) or info.slug,
        "items": items,
    }
    return (json.dumps(document, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


# --- publishing ----------------------------------------------------------------------------------


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
        for slug in slugs:
            published |= _publish_slug(config, archive, slug, context, feed_tags, state, report)
            report.feeds.append(slug)
        _write(root / "index.opml", _opml(config), report)
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
            outputs = {
                key: render_atom(
                    info,
                    entries,
                    feed_tags,
                    self_path=key,
                    prev_archive=prev_archive if document.number > 1 else None,
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
            _write(root / relative, data, report)
        state[key] = document.fingerprint
    return {output for document in documents for output in document.outputs}


def _write(path: Path, data: bytes, report: PublishReport) -> None:
    if write_atomic(path, data):
        report.written.append(path)
    else:
        report.unchanged += 1


def _opml(config: Config) -> bytes:
    base = config.settings.base_url
    outlines = [
        Outline(
            title=_xml(category.title) or slug,
            xml_url=feed_url(base, feed_path(slug, "atom")),
            html_url=FeedInfo(slug, "", "", base).home_page,
            description=_xml(category.description),
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
