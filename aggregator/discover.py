"""Find a site's feed from its HTML page: `<link rel="alternate" type="application/rss+xml" href="...">`.

The page is downloaded with the same fetcher the poller uses (bounded size, total deadline, only http(s)
redirects), with a tighter size limit and timeout: an operator is waiting at the prompt.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from .errors import FetchError
from .fetch import HostLimiter, HttpClient, fetch_feed
from .models import FeedConfig, FeedState, Fetched, FetchFailure, Settings
from .netguard import refusal

MAX_PAGE_BYTES = 5 * 1024 * 1024
MAX_SECONDS = 20.0
FEED_TYPES = {
    "application/rss+xml": "RSS",
    "application/atom+xml": "Atom",
    "application/feed+json": "JSON Feed",
    "application/json": "JSON Feed",
    "application/rdf+xml": "RDF",
    "application/xml": "XML",
    "text/xml": "XML",
}
_FEED_MARKERS = (b"<rss", b"<feed", b"<rdf:rdf", b"<rdf")


@dataclass(frozen=True, slots=True)
class FoundFeed:
    url: str
    kind: str
    title: str = ""


@dataclass(frozen=True, slots=True)
class Discovery:
    """What a URL turned out to be: a feed itself (`is_feed`), or a page that links to `feeds`."""

    url: str
    is_feed: bool
    feeds: tuple[FoundFeed, ...] = ()


class _AlternateLinks(HTMLParser):
    """Collects <link rel="alternate"> feed links and the page's <base href>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base = ""
        self.links: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name.lower(): (value or "") for name, value in attrs}
        if tag == "base" and values.get("href") and not self.base:
            self.base = values["href"].strip()
        if tag not in ("link", "a"):
            return
        rels = values.get("rel", "").lower().split()
        kind = values.get("type", "").split(";")[0].strip().lower()
        if "alternate" in rels and kind in FEED_TYPES and values.get("href", "").strip():
            self.links.append((values["href"].strip(), kind, values.get("title", "").strip()))


def feed_links(html: str, page_url: str) -> tuple[FoundFeed, ...]:
    """Feed links declared by an HTML page, absolute, http(s) only, without duplicates, in page order."""
    parser = _AlternateLinks()
    parser.feed(html)
    parser.close()
    base = urljoin(page_url, parser.base) if parser.base else page_url
    found: list[FoundFeed] = []
    for href, kind, title in parser.links:
        url = urljoin(base, href)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            continue  # javascript:, data:, feed: and friends are never followed
        if all(f.url != url for f in found):
            found.append(FoundFeed(url=url, kind=FEED_TYPES[kind], title=title))
    return tuple(found)


def looks_like_feed(body: bytes, content_type: str | None) -> bool:
    """A feed document rather than a web page, judged by media type and the first element."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media in ("application/rss+xml", "application/atom+xml", "application/feed+json", "application/rdf+xml"):
        return True
    head = body[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if media in ("application/json",) or head.startswith(b"{"):
        try:
            data = json.loads(body.decode("utf-8-sig"))
        except (ValueError, UnicodeDecodeError):
            return False
        return isinstance(data, dict) and "jsonfeed.org" in str(data.get("version", ""))
    if b"<html" in head or b"<!doctype html" in head:
        return False
    return any(marker in head for marker in _FEED_MARKERS)


def _page_text(body: bytes, content_type: str | None) -> str:
    charset = ""
    for part in (content_type or "").split(";")[1:]:
        name, _, value = part.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"')
    for encoding in (charset, "utf-8"):
        if encoding:
            try:
                return body.decode(encoding)
            except (LookupError, UnicodeDecodeError):
                continue
    return body.decode("latin-1")  # only <link> tags are read, and their URLs are ASCII in practice


async def _download(url: str, settings: Settings) -> Fetched:
    bounded = dataclasses.replace(
        settings,
        max_body_bytes=min(settings.max_body_bytes, MAX_PAGE_BYTES),
        request_timeout=min(settings.request_timeout, MAX_SECONDS),
    )
    async with HttpClient(bounded) as client:
        result = await fetch_feed(
            client, FeedConfig(url=url, category=""), FeedState(url=url, fetch_url=url), bounded, HostLimiter(1)
        )
    if isinstance(result, FetchFailure):
        raise FetchError(f"{url}: {result.message} (pass --no-discover to add the URL as it is)")
    if not isinstance(result, Fetched):
        raise FetchError(f"{url}: unexpected answer while discovering its feed")
    return result


async def _public_only(found: tuple[FoundFeed, ...], page_url: str, settings: Settings) -> tuple[FoundFeed, ...]:
    """A discovered URL was chosen by the page, not the operator: the private-network rule applies to it
    (a feed on the page's own host and port is fine, as a redirect there would be)."""
    allow = frozenset(h.lower() for h in settings.allow_hosts)
    kept = []
    for feed in found:
        if await refusal(feed.url, page_url, allow, settings.strict_network) is None:
            kept.append(feed)
    return tuple(kept)


def discover(url: str, settings: Settings) -> Discovery:
    """Download `url`: a feed is returned as is; an HTML page yields the feeds it links to."""
    fetched = asyncio.run(_download(url, settings))
    if looks_like_feed(fetched.body, fetched.content_type):
        return Discovery(url=url, is_feed=True)
    found = feed_links(_page_text(fetched.body, fetched.content_type), fetched.final_url)
    return Discovery(url=url, is_feed=False, feeds=asyncio.run(_public_only(found, url, settings)))
