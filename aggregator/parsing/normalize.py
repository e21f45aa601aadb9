"""Turn whatever a parser read (`RawFeed`) into safe, uniform `Entry` values. Pure: data in, data out.

This is the one place that decides identity, dates and what HTML is allowed, whichever parser ran.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from aggregator.core import sanitize as sanitize_module
from aggregator.core.dates import clamp_date, names_unknown_zone, read_date
from aggregator.core.fulltext import index_text
from aggregator.core.models import Enclosure, Entry, ParsedFeed, RawEntry, RawFeed, RawText
from aggregator.core.sanitize import (
    SANITIZER_VERSION,
    html_to_text,
    plain_text,
    remove_control_characters,
    safe_url,
    sanitize_html,
    text_to_html,
)

MAX_KEY_LENGTH = 1024
MAX_TITLE_LENGTH = 1000
_HTML_TYPES = ("text/html", "application/xhtml+xml", "html", "xhtml")


def entry_identity(feed_url: str, key: str) -> str:
    """The archive's id of an entry: stable for a (feed, original id) pair, 16 hex digits."""
    return hashlib.sha256(f"{feed_url}\n{key}".encode()).hexdigest()[:16]


def _is_html(text: RawText) -> bool:
    return text.type.lower() in _HTML_TYPES


def _as_html(text: RawText | None, document_url: str, fallback_base: str) -> str:
    if text is None or not text.value.strip():
        return ""
    # An explicit xml:base wins; otherwise relative links in an entry are relative to the entry's own
    # page (as Miniflux does), not to the feed document that happened to carry them.
    base = text.base if text.base and text.base != document_url else fallback_base
    if _is_html(text):
        return sanitize_html(text.value, base)
    return text_to_html(text.value)


def _plain_title(title: RawText | None) -> str:
    """Titles are plain text everywhere they are published. An HTML title loses its markup; a text one
    keeps every character, "<" included ("std::vector<int>", "History of the <blink> tag")."""
    if title is None:
        return ""
    text = html_to_text(title.value) if _is_html(title) else plain_text(title.value)
    return text[:MAX_TITLE_LENGTH]


def _declared_key(raw: RawEntry, link: str) -> str:
    """The entry's key when the source names it (its id, else its link); '' when only its content can."""
    key = remove_control_characters(raw.id).strip()
    if key:
        return key if len(key) <= MAX_KEY_LENGTH else "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return link


def _content_key(title: str, summary: str, content: str) -> str:
    digest = hashlib.sha256("\n".join((title, summary, content)).encode()).hexdigest()
    return f"sha256:{digest}"


def _normalizer_version() -> str:
    """What made a fingerprint: this module's code, the sanitiser's, nh3's version and Python's (urljoin,
    html.unescape). A fingerprint vouches for an entry only if the same code would normalise it, so any
    change to them (a new sanitising rule) has every entry normalised once more, with no version number
    to remember to bump."""
    digest = hashlib.sha256(f"{SANITIZER_VERSION}\n{sys.version}".encode())
    for source in (Path(__file__), Path(sanitize_module.__file__)):
        try:
            digest.update(source.read_bytes())
        except OSError:  # not installed as files: a version of this start's own, matched by no other
            digest.update(os.urandom(16))
    return digest.hexdigest()[:16]


_VERSION = _normalizer_version()


def raw_fingerprint(raw: RawEntry, feed_url: str, document_url: str, site_url: str) -> str:
    """A hash of everything that decides an entry's key and content hash, dates left out (as in
    `content_fingerprint`). An entry whose fingerprint the archive already holds normalises to what
    is stored, so a feed that gained one entry has only that one sanitised again, not all fifty."""
    parts = [_VERSION, feed_url, document_url, site_url, raw.id, raw.link]
    for field in (raw.title, raw.summary, raw.content):
        parts += ("0",) if field is None else ("1", field.value, field.type, field.base)
    parts += (str(len(raw.authors)), *raw.authors, str(len(raw.tags)), *raw.tags, str(len(raw.enclosures)))
    for enclosure in raw.enclosures:
        parts += (enclosure.url, enclosure.type, str(enclosure.length))
    # Every part's length, and each list's, keep the fields apart whatever they contain (raw text may
    # hold NUL or any separator); 6 us an entry, where repr() took 19.
    lengths = ",".join([str(len(part)) for part in parts])
    joined = "\x00".join(parts) + "\x00" + lengths
    return hashlib.sha256(joined.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def content_fingerprint(
    title: str,
    link: str,
    author: str,
    summary: str,
    content: str,
    tags: tuple[str, ...],
    enclosures: tuple[Enclosure, ...],
) -> str:
    """Hash of what a reader sees. Dates are left out: feeds that re-stamp items on every poll would
    otherwise make a new revision each time. Fields are joined with NUL, which the normaliser removed
    from every one of them, so two different entries cannot join to the same text."""
    parts = [title, link, author, summary, content, *tags, "\x00"]
    parts += [f"{e.url} {e.type} {e.length}" for e in enclosures]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _unique(values: tuple[str, ...]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for value in values:
        cleaned = plain_text(value)
        if cleaned and cleaned not in seen:
            seen[cleaned] = None
    return tuple(seen)


def normalize_entry(
    raw: RawEntry,
    *,
    feed_url: str,
    document_url: str,
    site_url: str,
    fetched_at: datetime,
    naive_zone: tzinfo = UTC,
) -> Entry:
    """`feed_url` is the feed's identity (its URL in feeds.yaml), `document_url` where the document was
    fetched from, `site_url` the feed's own home page link."""
    link = safe_url(raw.link, site_url or document_url)
    return _normalize_entry(
        raw, link, _declared_key(raw, link), feed_url, document_url, site_url, fetched_at, naive_zone
    )


def _normalize_entry(
    raw: RawEntry,
    link: str,
    key: str,
    feed_url: str,
    document_url: str,
    site_url: str,
    fetched_at: datetime,
    naive_zone: tzinfo,
    fingerprint: str = "",
    local_names: tzinfo | None = None,
) -> Entry:
    base = link or site_url or document_url
    title = _plain_title(raw.title)
    summary = _as_html(raw.summary, document_url, base)
    content = _as_html(raw.content, document_url, base)
    if content == summary:
        summary = ""
    author = plain_text(", ".join(html_to_text(a) for a in raw.authors if a))[:500]
    tags = _unique(raw.tags)
    enclosures = tuple(
        Enclosure(url=url, type=plain_text(e.type)[:200], length=max(0, e.length))
        for e in raw.enclosures
        if (url := safe_url(e.url, document_url))
    )
    published, published_guessed = _read(raw.published, raw.published_parsed, naive_zone, local_names)
    updated, updated_guessed = _read(raw.updated, raw.updated_parsed, naive_zone, local_names)
    chosen, flag = clamp_date(published or updated, fetched_at)
    if not flag and (published_guessed if published else updated_guessed):
        flag = "zone"  # kept, read in the feed's zone: only its offset is in doubt
    if updated is not None and clamp_date(updated, fetched_at)[1]:
        updated = None
    key = key or _content_key(title, summary, content)
    return Entry(
        id=entry_identity(feed_url, key),
        key=key,
        link=link,
        title=title,
        author=author,
        summary=summary,
        content=content,
        published=chosen.replace(microsecond=0),
        updated=updated.replace(microsecond=0) if updated else None,
        date_flag=flag,
        tags=tags,
        enclosures=enclosures,
        content_hash=content_fingerprint(title, link, author, summary, content, tags, enclosures),
        search_body=index_text(summary, content),
        raw_hash=fingerprint,
    )


def _read(
    text: str, parsed: datetime | None, naive_zone: tzinfo, local_names: tzinfo | None
) -> tuple[datetime | None, bool]:
    """A date and whether its offset is a guess (`read_date`); the parser's own reading of a text ours
    cannot read is a guess too when the text ends in a zone name the parser reads as UTC."""
    reading, guessed = read_date(text, naive_zone, local_names)
    if reading is None and parsed is not None:
        return parsed, names_unknown_zone(text)
    return reading, guessed


# Languages spoken under one zone that shares a name with others: "CST" is +0800 in a Chinese source (not US
# Central), "IST" +0530 in an Indian one, +0200/+0300 in an Israeli one, +0100 in an Irish one in summer.
_LANGUAGE_ZONES = (
    ("zh", "Asia/Shanghai"),
    ("hi", "Asia/Kolkata"),
    ("en-in", "Asia/Kolkata"),
    ("he", "Asia/Jerusalem"),
    ("iw", "Asia/Jerusalem"),
    ("en-il", "Asia/Jerusalem"),
    ("ga", "Europe/Dublin"),
    ("en-ie", "Europe/Dublin"),
)


def _zone_of_names(naive_zone: tzinfo, language: str) -> tzinfo | None:
    """The zone whose names ("CST", "IST") a feed's dates use: its configured `timezone`; without one, that
    of its language where the language says which (a Chinese source's "CST" is +0800, not US Central)."""
    if naive_zone is not UTC:
        return naive_zone
    language = language.strip().lower().replace("_", "-")
    for prefix, zone in _LANGUAGE_ZONES:
        if language == prefix or language.startswith(prefix + "-"):
            return ZoneInfo(zone)
    return None


def declared_ids(raw: RawFeed, *, feed_url: str, fetched_from: str = "") -> list[str]:
    """The archive ids of the entries whose key the source names (see `_declared_key`): what to look up
    in the archive for `normalize_feed`'s `known`."""
    document_url = fetched_from or feed_url
    site_url = safe_url(raw.link, document_url)
    ids = []
    for entry in raw.entries:
        if key := _declared_key(entry, safe_url(entry.link, site_url or document_url)):
            ids.append(entry_identity(feed_url, key))
    return ids


def normalize_feed(
    raw: RawFeed,
    *,
    feed_url: str,
    fetched_from: str = "",
    fetched_at: datetime,
    naive_zone: tzinfo = UTC,
    known: Mapping[str, str | None] | None = None,
) -> ParsedFeed:
    """Normalise every entry; an id repeated inside one document keeps its first occurrence.

    `feed_url` is the feed's identity (its URL in feeds.yaml), `fetched_from` where the body came from.
    `known` maps archive ids to the fingerprint (`raw_fingerprint`) stored with them: an entry whose
    fingerprint is unchanged is not normalised again, only listed in `unchanged`.
    """
    document_url = fetched_from or feed_url
    site_url = safe_url(raw.link, document_url)
    known = known or {}
    local_names = _zone_of_names(naive_zone, raw.language)
    entries: dict[str, Entry] = {}
    unchanged: dict[str, tuple[str, str]] = {}  # key -> (id, fingerprint)
    duplicates = 0
    for raw_entry in raw.entries:
        link = safe_url(raw_entry.link, site_url or document_url)
        key = _declared_key(raw_entry, link)
        if key in entries or key in unchanged:
            duplicates += 1
            continue
        fingerprint = raw_fingerprint(raw_entry, feed_url, document_url, site_url)
        if key and (entry_id := entry_identity(feed_url, key)) in known and known[entry_id] == fingerprint:
            unchanged[key] = (entry_id, fingerprint)
            continue
        entry = _normalize_entry(
            raw_entry, link, key, feed_url, document_url, site_url, fetched_at, naive_zone, fingerprint, local_names
        )
        if entry.key in entries or entry.key in unchanged:
            duplicates += 1
            continue
        entries[entry.key] = entry
    return ParsedFeed(
        format=raw.format,
        title=_plain_title(RawText(raw.title, raw.title_type)),
        link=site_url,
        language=plain_text(raw.language)[:35],
        ttl=raw.ttl,
        entries=tuple(entries.values()),
        duplicates=duplicates,
        warning=raw.warning,
        unchanged=tuple(unchanged.values()),
    )
