"""One feed document from stored entries: Atom 1.0 and RSS 2.0 (feedgen) and JSON Feed 1.1, and the paths,
URLs and ids they are published under. The only module that imports feedgen. Pure: entries in, bytes out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator

from aggregator import __version__
from aggregator.core.models import Config, Enclosure, StoredEntry
from aggregator.core.redact import fingerprint_secrets, redact_url
from aggregator.core.sanitize import html_to_text, remove_control_characters

ALL = "all"
FEEDS_DIR = "feeds"
FEED_FORMATS = {
    "atom": "application/atom+xml",
    "rss": "application/rss+xml",
    "json": "application/feed+json",
}
HISTORY_NS = "http://purl.org/syndication/history/1.0"
DC_NS = "http://purl.org/dc/elements/1.1/"
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
# Bump when the rendering changes, so every document is rendered again once.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(.+)$", re.DOTALL)
_NOT_IN_IRI = re.compile(r"[\s<>\"{}|\\^`]")
_TAB_OR_NEWLINE = re.compile(r"[\t\r\n]")
_INVALID_IN_URL = re.compile(r"[\x00-\x20\x7f<>\"{}|\\^`]")
_DNS_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$")
# Our own pseudo-scheme for entries that had neither id nor link (normalize._entry_key): not an IRI to share.
_PRIVATE_SCHEMES = {"sha256"}


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


def xml_text(text: str) -> str:
    """Text with the characters XML 1.0 forbids removed: lxml refuses them, and so do readers."""
    return remove_control_characters(text) if text else ""


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
        _sub(source, "title", xml_text(entry.feed_title) or source_url)
        _sub(source, "link", None, rel="self", href=source_url)
        if entry.feed_site_url:
            _sub(source, "link", None, rel="alternate", href=_link(entry.feed_site_url))
        if not entry.author:
            # An entry without an author takes its source's (RFC 4287 4.2.1), and only without one the
            # republishing feed's: the source feed, not this archive, wrote it.
            author = _sub(source, "author", None)
            _sub(author, "name", xml_text(entry.feed_title) or urlsplit(entry.feed_url).hostname or source_url)
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
            _sub(element, f"{{{DC_NS}}}creator", xml_text(entry.author))
        source_url = redact_url(entry.feed_url)
        _sub(element, "source", xml_text(entry.feed_title) or source_url, url=source_url)
        if entry.enclosures:  # RSS 2.0 allows one enclosure per item: the first
            enclosure = entry.enclosures[0]
            _sub(element, "enclosure", None, url=_link(enclosure.url), **_enclosure_attributes(enclosure))
        return element


def _enclosure_attributes(enclosure: Enclosure) -> dict[str, str]:
    return {"type": xml_text(enclosure.type) or "application/octet-stream", "length": str(enclosure.length)}


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
        cleaned = xml_text(tag).strip()
        if cleaned:
            seen.setdefault(cleaned, None)
    return list(seen)


def _new_generator(info: FeedInfo, entries: Sequence[StoredEntry]) -> FeedGenerator:
    generator = FeedGenerator()
    generator.register_extension("atom_extras", _HistoryExtension, _AtomEntryExtension, atom=True, rss=False)
    generator.register_extension("rss_extras", _DublinCoreExtension, _RssEntryExtension, atom=False, rss=True)
    generator.id(info.feed_id)
    generator.title(xml_text(info.title) or info.slug)
    generator.description(xml_text(info.description) or xml_text(info.title) or info.slug)
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
        item.title(xml_text(entry.title) or "(untitled)")
        if entry.link:
            item.link(href=_link(entry.link), rel="alternate")
        item.updated(modified(entry))
        if entry.date_flag != "missing":
            item.published(entry.published)
        if entry.summary:
            item.summary(xml_text(entry.summary), type="html")
        if entry.content or not (entry.link or entry.summary):
            # Atom needs content or an alternate link; an entry with neither gets an empty content element.
            item.content(xml_text(entry.content), type="html")
        elif not entry.link:
            item.content(xml_text(entry.summary), type="html")
        if entry.author:
            item.author(name=xml_text(entry.author))
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
    next_archive: str | None = None,
) -> bytes:
    generator = _new_generator(info, entries)
    generator.atom_extras.archive = is_archive
    generator.link(href=feed_url(info.base_url, self_path), rel="self", type=FEED_FORMATS["atom"])
    if is_archive:
        generator.link(href=feed_url(info.base_url, feed_path(info.slug, "atom")), rel="current")
    if prev_archive:
        generator.link(href=feed_url(info.base_url, prev_archive), rel="prev-archive")
    if next_archive:
        generator.link(href=feed_url(info.base_url, next_archive), rel="next-archive")
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
        item["title"] = xml_text(entry.title)
        item["content_html"] = xml_text(entry.content or entry.summary)
        if entry.summary and entry.content:
            item["summary"] = html_to_text(entry.summary)
        if entry.date_flag != "missing":
            item["date_published"] = entry.published.isoformat()
        if entry.updated or entry.revision > 1:
            item["date_modified"] = modified(entry).isoformat()
        if entry.author:
            item["authors"] = [{"name": xml_text(entry.author)}]
        item["tags"] = _categories(entry, feed_tags)
        if entry.enclosures:
            item["attachments"] = [
                {"url": _link(e.url), "mime_type": xml_text(e.type) or "application/octet-stream"}
                | ({"size_in_bytes": e.length} if e.length else {})
                for e in entry.enclosures
            ]
        item["_source"] = {
            "title": xml_text(entry.feed_title),
            "feed_url": redact_url(entry.feed_url),
            "home_page_url": _link(entry.feed_site_url),
        }
        items.append(item)
    document = {
        "version": JSON_FEED_VERSION,
        "title": xml_text(info.title) or info.slug,
        "home_page_url": info.home_page,
        "feed_url": feed_url(info.base_url, self_path),
        "description": xml_text(info.description) or xml_text(info.title) or info.slug,
        "items": items,
    }
    return (json.dumps(document, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


# --- publishing ----------------------------------------------------------------------------------
