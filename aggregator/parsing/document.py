"""Bytes in, `RawFeed` out: feedparser for XML feeds, our own reader for JSON Feed.

feedparser is imported here and nowhere else. It is only ever handed a BytesIO, never a str: given a
string it would open a local file or fetch a URL itself, bypassing every guard of our fetcher.
"""

from __future__ import annotations

import calendar
import io
import re
from datetime import UTC, datetime
from typing import Any

import feedparser

from aggregator.core.encoding import charset_from_content_type, to_utf8_document
from aggregator.core.errors import ParseError
from aggregator.core.models import Enclosure, RawEntry, RawFeed, RawText
from aggregator.core.numbers import MAX_JSON_INTEGER, ONE_YEAR_MINUTES, read_count
from aggregator.parsing.fastpath import is_web_address, parse_fast
from aggregator.parsing.jsonfeed import looks_like_json, parse_json_feed

MAX_PERSON_FIELD = 1000
_HTML_START = re.compile(
    rb"^(?:\xef\xbb\xbf)?\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)[\s>]", re.IGNORECASE | re.DOTALL
)  # after a UTF-8 byte order mark, as many pages have
_FORMATS = {
    "rss090": "RSS 0.90",
    "rss091n": "RSS 0.91",
    "rss091u": "RSS 0.91",
    "rss092": "RSS 0.92",
    "rss093": "RSS 0.93",
    "rss094": "RSS 0.94",
    "rss20": "RSS 2.0",
    "rss10": "RSS 1.0",
    "rss": "RSS",
    "atom01": "Atom 0.1",
    "atom02": "Atom 0.2",
    "atom03": "Atom 0.3",
    "atom10": "Atom 1.0",
    "atom": "Atom",
    "cdf": "CDF",
}


def parse_document(
    body: bytes, url: str, content_type: str | None = None, charset: str | None = None, *, fast: bool = True
) -> RawFeed:
    """Read a fetched document. Raises ParseError when it is not a feed at all.

    `fast=False` skips the lxml fast path (aggregator/fastpath.py): feedparser is the reference."""
    if not body.strip():
        raise ParseError("empty body: the server sent no document")
    if looks_like_json(body):
        return parse_json_feed(body, url, charset, charset_from_content_type(content_type))
    if _HTML_START.match(body[:4096]):
        raise ParseError("not a feed: the server sent an HTML page")
    document, _encoding = to_utf8_document(body, content_type, charset)
    document = defuse(document)
    media_type = (content_type or "application/xml").split(";")[0].strip() or "application/xml"
    if media_type.startswith("text/html"):
        media_type = "application/xml"
    # Well-formed RSS 2.0 / Atom 1.0 read by lxml: the same RawFeed, ~5x faster. None means "not sure".
    if fast and (quick := parse_fast(document, url, media_type)) is not None:
        return quick
    # No content-location: feedparser would resolve guids such as "1234" against it, changing identities.
    headers = {"content-type": f"{media_type}; charset=utf-8"}
    try:
        result = feedparser.parse(
            io.BytesIO(document),
            response_headers=headers,
            resolve_relative_uris=False,
            sanitize_html=False,
        )
    except Exception as error:  # feedparser raises a wide, undocumented range on hostile input
        raise ParseError(f"unreadable feed: {type(error).__name__}: {error}") from None
    return _to_raw_feed(result, url)


# The internal subset ends at the first `]` outside quoted literals, comments and processing
# instructions, as XML reads it: an entity value may itself hold "]>". Each alternative starts with its
# own character and nothing is given back (possessive), so a subset that never closes fails in linear time.
_INTERNAL_SUBSET = re.compile(
    rb"(<!DOCTYPE\s+[^\s\[>]+(?:\s+(?:PUBLIC|SYSTEM)(?:\s+(?:\"[^\"]*\"|'[^']*'))+)?)\s*"
    rb"\[(?:[^\]\"'<]++|\"[^\"]*+\"|'[^']*+'|<!--.*?-->|<\?.*?\?>|<(?!!--|\?))*+\]\s*>",
    re.DOTALL | re.IGNORECASE,
)
_PERSON_TAGS = "(?:author|dc:creator|managingEditor|webMaster|itunes:author|itunes:owner|contributor)"
_PERSON_FIELD = re.compile(
    r"(<" + _PERSON_TAGS + r"(?:\s[^>]*)?>)" + r"([^<]{" + str(MAX_PERSON_FIELD + 1) + r",})(</)"
)


# A looser form of _PERSON_FIELD for bytes, matching wherever it matches the decoded text: `[^>]*` where
# the text form has `\s[^>]*` (in bytes `\s` misses U+00A0 and U+3000), and a field's bytes are at
# least as many as its characters.
_PERSON_FIELD_BYTES = re.compile(("<" + _PERSON_TAGS + "[^>]*>[^<]{" + str(MAX_PERSON_FIELD + 1) + ",}</").encode())
_PROLOG_SPACE = re.compile(rb"[ \t\r\n]*")
_CHARACTER_REFERENCE = re.compile(rb"&#(?:[xX]([0-9a-fA-F]{1,8})|([0-9]{1,10}));")


def _valid_reference(match: re.Match[bytes]) -> bytes:
    """A character reference to a code point XML forbids (a lone surrogate such as &#xD800;, NUL, beyond
    U+10FFFF) becomes U+FFFD: feedparser raises on some of them instead of flagging the feed."""
    hexadecimal, decimal = match.groups()
    code = int(hexadecimal, 16) if hexadecimal else int(decimal)
    allowed = (
        code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF
    )
    return match.group(0) if allowed else b"&#xFFFD;"


def defuse(document: bytes) -> bytes:
    """Remove what makes feedparser slow, explosive or lossy before it (or the fast path) sees the document.

    - A DOCTYPE's internal subset is dropped: entity declarations are how "billion laughs" and
      quadratic-blowup documents expand a 100 KB body into hundreds of megabytes. No real feed needs them.
    - Character references to code points XML forbids become U+FFFD.
    - Markup inside an RSS guid, author or category is reduced to its text (`flatten_text_elements`).
    - Person fields (author, dc:creator, ...) are cut to MAX_PERSON_FIELD characters: feedparser's
      e-mail regex is quadratic in their length (40,000 characters take ~10 s).
    """
    start = _doctype_start(document)
    if start != -1:
        match = _INTERNAL_SUBSET.match(document, start)
        if match:
            document = document[:start] + match.group(1) + b">" + document[match.end() :]
    if b"&#" in document:
        document = _CHARACTER_REFERENCE.sub(_valid_reference, document)
    document = flatten_text_elements(document)  # before the person fields' cap: it may join an author's text
    # No match in the bytes, none in the text: the document is not decoded for nothing.
    if len(document) > MAX_PERSON_FIELD and _PERSON_FIELD_BYTES.search(document):
        text = document.decode("utf-8", errors="replace")
        if _PERSON_FIELD.search(text):
            text = _PERSON_FIELD.sub(lambda m: m.group(1) + m.group(2)[:MAX_PERSON_FIELD] + m.group(3), text)
            document = text.encode("utf-8")
    return document


# An RSS guid, author or category holding an element, as some feeds write (`<guid><p>abc123</p></guid>`).
_MARKUP_IN_TEXT = re.compile(rb"<(guid|author|category)(?:\s[^<>]*)?(?<!/)>()[^<]*<[^!/?]")
_CLOSING = {name: re.compile(b"</" + name + rb"\s*>") for name in (b"guid", b"author", b"category")}
_PERSON_PARTS = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:name|email|uri|url|homepage)[\s/>]")
_RSS_ROOT = re.compile(rb"<(?:rss|(?:[A-Za-z_][\w.-]*:)?RDF)[\s>]")


def flatten_text_elements(document: bytes) -> bytes:
    """An RSS guid, author or category holding markup, reduced to its text: `<guid><p>abc123</p></guid>` is
    `<guid>abc123</guid>`. Such markup is invalid, but seen; feedparser files the inner element's text under
    that element's name, so the guid, author or category was lost, and with its guid an item fell back to
    a content hash: two such items alike but for their guids became one entry. An author made of name and
    e-mail elements is left to feedparser, which reads it as a person; Atom is left alone (its authors are
    made of elements)."""
    match = _MARKUP_IN_TEXT.search(document)
    if match is None:
        return document
    root = _root_start(document)
    if root == -1 or not _RSS_ROOT.match(document, root):
        return document
    parts: list[bytes] = []
    position = 0
    while match is not None:
        name, opening_end = match.group(1), match.end(2)
        closing = _CLOSING[name].search(document, opening_end)
        if closing is None:
            break
        inner = document[opening_end : closing.start()]
        if b"<" + name not in inner and not (name == b"author" and _PERSON_PARTS.search(inner)):
            text = _text_of_markup(inner)
            if text is not None:
                parts += (document[position:opening_end], text)
                position = closing.start()
        match = _MARKUP_IN_TEXT.search(document, closing.end())
    return b"".join([*parts, document[position:]]) if parts else document


_MARKUP_ENDS = ((b"<![CDATA[", b"]]>"), (b"<!--", b"-->"), (b"<?", b"?>"), (b"<", b">"))


def _text_of_markup(inner: bytes) -> bytes | None:
    """The text of an element's content, as XML reads it (CDATA kept as text); None when some markup in it
    never ends. A loop of finds, not a regex: lazy patterns would rescan an unterminated CDATA to the end
    once for every one that follows it."""
    pieces = []
    position = 0
    while (start := inner.find(b"<", position)) != -1:
        pieces.append(inner[position:start])
        opening, closing = next((o, c) for o, c in _MARKUP_ENDS if inner.startswith(o, start))
        end = inner.find(closing, start + len(opening))
        if end == -1:
            return None
        if opening == b"<![CDATA[":
            pieces.append(inner[start + 9 : end].replace(b"&", b"&amp;").replace(b"<", b"&lt;").replace(b">", b"&gt;"))
        position = end + len(closing)
    pieces.append(inner[position:])
    return b"".join(pieces)


def _past_misc(document: bytes, position: int = 0) -> int:
    """Where the document goes on after the XML declaration, comments, processing instructions and white
    space from `position`, however long those are; -1 when one of them never ends."""
    while True:
        position = _PROLOG_SPACE.match(document, position).end()  # type: ignore[union-attr]
        if document.startswith(b"<?", position):
            end, closing = document.find(b"?>", position + 2), 2
        elif document.startswith(b"<!--", position):
            end, closing = document.find(b"-->", position + 4), 3
        else:
            return position
        if end == -1:
            return -1
        position = end + closing


def _doctype_start(document: bytes) -> int:
    """Where the document's DOCTYPE starts, -1 without one. It follows the XML declaration, comments and
    processing instructions, however long those are (a DOCTYPE behind a 5 KB comment still reached
    expat, which expanded its entities), and nothing after the root element's start is one."""
    position = _past_misc(document)
    return position if position != -1 and document[position : position + 9].upper() == b"<!DOCTYPE" else -1


def _root_start(document: bytes) -> int:
    """Where the root element starts (past a DOCTYPE, whose internal subset defuse has dropped); -1 if unsure."""
    position = _past_misc(document)
    if position != -1 and document[position : position + 9].upper() == b"<!DOCTYPE":
        end = document.find(b">", position)
        position = -1 if end == -1 else _past_misc(document, end + 1)
    return position


def _to_raw_feed(result: Any, url: str) -> RawFeed:
    version = result.get("version") or ""
    feed = result.get("feed") or {}
    entries = result.get("entries") or []
    warning = ""
    if result.get("bozo"):
        exception = result.get("bozo_exception")
        warning = f"{type(exception).__name__}: {exception}" if exception else "not well-formed"
    if not version and not entries and not feed.get("title"):
        reason = f" ({warning})" if warning else ""
        raise ParseError(f"not a feed: no RSS, Atom or JSON Feed document found{reason}")
    ttl = feed.get("ttl")
    title = _text(feed.get("title_detail"), feed.get("title"), url)
    return RawFeed(
        format=_FORMATS.get(version, version or "unknown"),
        title=title.value if title else "",
        title_type=title.type if title else "text/plain",
        link=feed.get("link") or "",
        language=feed.get("language") or "",
        ttl=read_count(ttl, ONE_YEAR_MINUTES) if isinstance(ttl, str) else None,
        entries=tuple(_to_raw_entry(entry, url) for entry in entries),
        warning=f"not well-formed, read as far as it goes ({warning[:500]})" if warning else "",
    )


def _text(detail: Any, fallback: str | None, base: str) -> RawText | None:
    if detail:
        value = detail.get("value")
        if value is None:
            return None
        return RawText(value=value, type=detail.get("type") or "text/html", base=detail.get("base") or base)
    if fallback:
        return RawText(value=fallback, type="text/html", base=base)
    return None


def _best_content(contents: list[Any], base: str) -> RawText | None:
    if not contents:
        return None
    for wanted in ("text/html", "application/xhtml+xml"):
        for content in contents:
            if content.get("type") == wanted:
                return _text(content, None, base)
    return _text(contents[0], None, base)


def _parsed_date(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (OverflowError, ValueError, TypeError, OSError):
        return None


def _link(entry: Any) -> str:
    """The entry's link; a permalink guid or Atom id that feedparser made the link only when it is an absolute
    http(s) URL (as in fastpath.py). A link element's value is in `links`; one taken from the id is not."""
    link = entry.get("link") or ""
    if (
        link
        and entry.get("guidislink")
        and link == entry.get("id")
        and not is_web_address(link)
        and all(other.get("href") != link for other in entry.get("links") or [])
    ):
        return ""
    return str(link)


def _to_raw_entry(entry: Any, url: str) -> RawEntry:
    base = url
    authors = tuple(
        a.get("name") or a.get("email") or "" for a in entry.get("authors") or [] if a.get("name") or a.get("email")
    )
    if not authors and entry.get("author"):
        authors = (entry["author"],)
    enclosures = []
    for link in entry.get("links") or []:
        if link.get("rel") == "enclosure" and link.get("href"):
            length = read_count(str(link.get("length") or "0"), MAX_JSON_INTEGER) or 0
            enclosures.append(Enclosure(url=link["href"], type=link.get("type") or "", length=length))
    summary = _text(entry.get("summary_detail"), entry.get("summary"), base)
    contents = entry.get("content") or []
    content = _best_content(contents, base)
    if not entry.get("summary_detail") and summary and any(c.get("value") == summary.value for c in contents):
        # feedparser's copy of the content as the summary, without its type: a text/plain content would
        # come back a second time, read as HTML.
        summary = None
    return RawEntry(
        id=str(entry.get("id") or ""),
        link=_link(entry),
        title=_text(entry.get("title_detail"), entry.get("title"), base),
        summary=summary,
        content=content,
        authors=authors,
        published=entry.get("published") or entry.get("created") or "",
        # dict.get: FeedParserDict would answer a missing `updated` with `published` (deprecated, warns).
        updated=dict.get(entry, "updated") or "",
        published_parsed=_parsed_date(entry.get("published_parsed") or entry.get("created_parsed")),
        updated_parsed=_parsed_date(dict.get(entry, "updated_parsed")),
        tags=tuple(
            t.get("term") or t.get("label") or "" for t in entry.get("tags") or [] if t.get("term") or t.get("label")
        ),
        enclosures=tuple(enclosures),
    )
