"""Turn whatever a parser read (`RawFeed`) into safe, uniform `Entry` values. Pure: data in, data out.

This is the one place that decides identity, dates and what HTML is allowed, whichever parser ran.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, tzinfo

from .dates import clamp_date, parse_date
from .fulltext import index_text
from .models import Enclosure, Entry, ParsedFeed, RawEntry, RawFeed, RawText
from .sanitize import html_to_text, plain_text, remove_control_characters, safe_url, sanitize_html, text_to_html

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


def _entry_key(raw: RawEntry, link: str, title: str, summary: str, content: str) -> str:
    key = remove_control_characters(raw.id).strip()
    if key:
        return key if len(key) <= MAX_KEY_LENGTH else "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    if link:
        return link
    digest = hashlib.sha256("\n".join((title, summary, content)).encode()).hexdigest()
    return f"sha256:{digest}"


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
    base = link or site_url or document_url
    # Titles are plain text everywhere we publish them; markup in them (even in a "text" title) is dropped.
    title = html_to_text(raw.title.value if raw.title else "")[:MAX_TITLE_LENGTH]
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
    published = parse_date(raw.published, naive_zone) or raw.published_parsed
    updated = parse_date(raw.updated, naive_zone) or raw.updated_parsed
    chosen, flag = clamp_date(published or updated, fetched_at)
    if updated is not None and clamp_date(updated, fetched_at)[1]:
        updated = None
    key = _entry_key(raw, link, title, summary, content)
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
    )


def normalize_feed(
    raw: RawFeed, *, feed_url: str, fetched_from: str = "", fetched_at: datetime, naive_zone: tzinfo = UTC
) -> ParsedFeed:
    """Normalise every entry; an id repeated inside one document keeps its first occurrence.

    `feed_url` is the feed's identity (its URL in feeds.yaml), `fetched_from` where the body came from.
    """
    document_url = fetched_from or feed_url
    site_url = safe_url(raw.link, document_url)
    entries: dict[str, Entry] = {}
    duplicates = 0
    for raw_entry in raw.entries:
        entry = normalize_entry(
            raw_entry,
            feed_url=feed_url,
            document_url=document_url,
            site_url=site_url,
            fetched_at=fetched_at,
            naive_zone=naive_zone,
        )
        if entry.key in entries:
            duplicates += 1
            continue
        entries[entry.key] = entry
    return ParsedFeed(
        format=raw.format,
        title=plain_text(html_to_text(raw.title))[:MAX_TITLE_LENGTH],
        link=site_url,
        language=plain_text(raw.language)[:35],
        ttl=raw.ttl,
        entries=tuple(entries.values()),
        duplicates=duplicates,
        warning=raw.warning,
    )
