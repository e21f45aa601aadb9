"""Find a site's feed from its HTML page: `<link rel="alternate" type="application/rss+xml" href="...">`.

The page is downloaded with the same fetcher the poller uses (bounded size, total deadline, only http(s)
redirects), with a tighter size limit and timeout: an operator is waiting at the prompt.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from aggregator.core.encoding import canonical, charset_from_content_type
from aggregator.core.errors import FetchError
from aggregator.core.models import FeedConfig, FeedState, Fetched, FetchFailure, Settings
from aggregator.fetching.addresses import refusal
from aggregator.fetching.client import HostLimiter, HttpClient, fetch_feed

MAX_PAGE_BYTES = 5 * 1024 * 1024
MAX_SECONDS = 20.0
FEED_TYPES = {
    "application/rss+xml": "RSS",
    "application/atom+xml": "Atom",
    "application/feed+json": "JSON Feed",
    "application/json": "JSON Feed?",
    "application/rdf+xml": "RDF",
    "application/xml": "XML",
    "text/xml": "XML",
}
_FEED_MARKERS = (b"<rss", b"<feed", b"<rdf:rdf", b"<rdf")
# Types a page also uses for things that are not feeds (WordPress links its REST API as application/json
# from every page): a link of one of these is downloaded and kept only when it is a feed.
_AMBIGUOUS_TYPES = frozenset({"JSON Feed?", "XML"})
# The first element of an XML or HTML document, after its declaration, comments, PIs and doctype.
_ROOT_ELEMENT = re.compile(rb"(?:\s|<\?.*?\?>|<!--.*?-->|<!doctype[^>]*>)*<([a-z][a-z0-9:_-]*)", re.DOTALL)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9._:-]+)""", re.IGNORECASE)


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
    refused: tuple[str, ...] = ()  # feed links on private addresses the settings do not allow


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
    root = _ROOT_ELEMENT.match(head)
    if root is not None:
        return root.group(1) in (b"rss", b"feed", b"rdf:rdf", b"rdf")
    if b"<html" in head or b"<!doctype html" in head:
        return False
    return any(marker in head for marker in _FEED_MARKERS)


def _page_text(body: bytes, content_type: str | None) -> str:
    charset = charset_from_content_type(content_type)
    declared = _META_CHARSET.search(body[:4096])
    meta = declared.group(1).decode("ascii") if declared else ""
    # The server's charset, the page's own <meta charset>, then UTF-8 and GB18030: a Chinese page's feed
    # title, and a feed URL with Chinese in its path, must not come out as mojibake.
    for encoding in (charset, meta, "utf-8", "gb18030"):
        if encoding:
            try:
                return body.decode(canonical(encoding) or encoding)
            except (LookupError, UnicodeDecodeError):
                continue
    return body.decode("latin-1")


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


async def _usable(found: tuple[FoundFeed, ...], page_url: str, settings: Settings) -> Discovery:
    """A discovered URL was chosen by the page, not the operator: the private-network rule applies to it
    (a feed on the page's own host and port is fine, as a redirect there would be). A link of an
    ambiguous type is kept only if it downloads as a feed."""
    allow = frozenset(h.lower() for h in settings.allow_hosts)
    kept, refused = [], []
    for feed in found:
        if await refusal(feed.url, page_url, allow, settings.strict_network) is not None:
            refused.append(feed.url)
            continue
        if feed.kind in _AMBIGUOUS_TYPES:
            try:
                fetched = await _download(feed.url, settings)
            except FetchError:
                continue
            if not looks_like_feed(fetched.body, fetched.content_type):
                continue
            feed = dataclasses.replace(feed, kind="JSON Feed" if feed.kind == "JSON Feed?" else feed.kind)
        kept.append(feed)
    return Discovery(url=page_url, is_feed=False, feeds=tuple(kept), refused=tuple(refused))


def discover(url: str, settings: Settings) -> Discovery:
    """Download `url`: a feed is returned as is; an HTML page yields the feeds it links to."""
    fetched = asyncio.run(_download(url, settings))
    if looks_like_feed(fetched.body, fetched.content_type):
        return Discovery(url=url, is_feed=True)
    found = feed_links(_page_text(fetched.body, fetched.content_type), fetched.final_url)
    return asyncio.run(_usable(found, url, settings))
