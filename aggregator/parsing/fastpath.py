"""A fast path for the common case: well-formed RSS 2.0 and Atom 1.0, read with lxml.

feedparser is the reference: for every document this module accepts, it returns the very `RawFeed`
that `document.py`'s feedparser path returns (tests/test_fastdocument.py checks that over a corpus). Anything
it does not know well enough — a DOCTYPE or entities, RSS 0.9x/1.0, Atom 0.3, xml:base, XHTML content,
unknown namespaces inside entries, markup inside text elements, duplicated elements whose precedence
feedparser decides in its own way — makes it decline (return None), and the caller uses feedparser.

The quirks reproduced here are feedparser 6's own: whitespace stripped from every text, windows-1252
code points mapped, "double-encoded UTF-8" repaired, RSS titles that look like HTML typed as HTML,
permalink guids and Atom ids resolved against the document URL and used as the link when there is no
other (here and in document.py, only when they are absolute http(s) URLs: feedparser takes any).
(feedparser's copy of the content into an absent summary is not reproduced: the feedparser path drops it
too, as it loses the content's type.)
"""

from __future__ import annotations

import calendar
import contextlib
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from feedparser.datetimes import _parse_date as feedparser_parse_date
from feedparser.html import _cp1252
from feedparser.mixin import _FeedParserMixin
from lxml import etree

from aggregator.core.dates import parse_date
from aggregator.core.models import Enclosure, RawEntry, RawFeed, RawText
from aggregator.core.numbers import MAX_JSON_INTEGER, ONE_YEAR_MINUTES, read_count

ATOM = "http://www.w3.org/2005/Atom"
CONTENT = "http://purl.org/rss/1.0/modules/content/"
DC = "http://purl.org/dc/elements/1.1/"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
# Qualified names, built once: the element loops compare every child's tag with them.
_ATOM_PREFIX = f"{{{ATOM}}}"
_ATOM_FEED, _ATOM_LINK = f"{_ATOM_PREFIX}feed", f"{_ATOM_PREFIX}link"
_ATOM_NAME, _ATOM_EMAIL, _ATOM_URI = f"{_ATOM_PREFIX}name", f"{_ATOM_PREFIX}email", f"{_ATOM_PREFIX}uri"
_CONTENT_ENCODED = f"{{{CONTENT}}}encoded"
_DC_DATE, _DC_CREATOR = f"{{{DC}}}date", f"{{{DC}}}creator"
_ATOM_PREFIX_LENGTH = len(_ATOM_PREFIX)
# Namespaces whose elements feedparser keeps under keys we never read: safe to skip inside an item.
_IGNORED_ITEM_NAMESPACES = frozenset({"http://wellformedweb.org/CommentAPI/", "http://purl.org/rss/1.0/modules/slash/"})
_IGNORED_CHANNEL_NAMESPACES = frozenset({"http://purl.org/rss/1.0/modules/syndication/"})
_XML_MEDIA_TYPES = frozenset({"application/xml", "text/xml"})
_URI_FIXER = re.compile("^([A-Za-z][A-Za-z0-9+-.]*://)(/*)(.*?)")
_EMAIL = re.compile(
    r"""(([a-zA-Z0-9\_\-\.\+]+)@((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.)|(([a-zA-Z0-9\-]+\.)+))"""
    r"""([a-zA-Z]{2,4}|[0-9]{1,3})(\]?))(\?subject=\S+)?"""
)
_C1_CONTROLS = re.compile("[\x80-\x9f]")  # what feedparser's cp1252 table maps
_LINK_ENTITY = re.compile("&([A-Za-z0-9_]+);")
_looks_like_html: Callable[[str], bool] = _FeedParserMixin.looks_like_html
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_ATOM_TEXT_TYPES = {"text": "text/plain", "html": "text/html"}

# The parser is safe by construction: no entity expansion, no DTD, no network, no huge trees.
_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=False
)


class DeclineError(Exception):
    """The document is outside what the fast path reproduces exactly."""


def parse_fast(document: bytes, url: str, media_type: str = "application/xml") -> RawFeed | None:
    """`document` is UTF-8 (as `encoding.to_utf8_document` makes it). None means: use feedparser."""
    if media_type not in _XML_MEDIA_TYPES and not media_type.endswith("+xml"):
        return None  # feedparser would flag the content type and parse leniently
    # A DOCTYPE comes before the root element, so nearly always near the start; one further on is
    # caught after parsing (docinfo, below), and this parser resolves no entities meanwhile. Scanning
    # every whole body for it cost as much as a third of parsing it.
    if b"xml:base" in document or b"<!DOCTYPE" in document[:4096].upper():
        return None
    try:
        root = etree.fromstring(document, _PARSER)
    except (etree.XMLSyntaxError, ValueError):
        return None
    if root is None or root.getroottree().docinfo.doctype:
        return None
    try:
        if root.tag == "rss" and root.get("version") == "2.0" and not root.nsmap.get(None):
            return _read_rss(root, url)
        if root.tag == _ATOM_FEED:
            return _read_atom(root, url)
    except DeclineError:
        return None
    return None


# --- feedparser's text rules -------------------------------------------------------------------------


def _finish(value: str) -> str:
    """What feedparser's `pop()` does to every text after reading it."""
    value = value.strip()
    if value.isascii():  # constant time, and most text is: neither step below can change it
        return value
    # feedparser "repairs" UTF-8 that was decoded as latin-1 (and so do we, to match it)
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
        value = value.encode("iso-8859-1").decode("utf-8")
    return value.translate(_cp1252) if _C1_CONTROLS.search(value) else value


def _text_of(element: Any) -> str:
    """The element's text; markup inside it (or a comment, or a PI) is read differently by feedparser."""
    if len(element):
        raise DeclineError
    return _finish(element.text or "")


def _attributes(element: Any) -> dict[str, str]:
    # feedparser lowercases names (and the values of rel and type) and turns &amp; back into &.
    attrs = {}
    for name, value in element.attrib.items():
        if name.startswith("{"):
            raise DeclineError
        key = name.lower()
        value = value.lower() if key in ("rel", "type") else value
        attrs[key] = value.replace("&amp;", "&")
    return attrs


def _resolve(uri: str) -> str:
    """feedparser's `resolve_uri` as document.py calls it: its base URI is empty (a BytesIO has no URL and
    it does not take Content-Location as one), so relative links stay relative until the normaliser."""
    fixed = _URI_FIXER.match(uri)
    if fixed is None or fixed.start(2) == fixed.end(2):
        return uri  # nearly every URI: no slashes to drop (a template sub runs Python code per call)
    return fixed.group(1) + uri[fixed.end(2) :]


_WEB_ADDRESS = re.compile(r"https?://[^/?#\s]", re.IGNORECASE)


def is_web_address(value: str) -> bool:
    """Whether a permalink guid (or an Atom id) may serve as the entry's link: only an absolute http(s) URL.
    feedparser takes any for the link, and "abc123" resolved against the feed's address is a page that
    never existed."""
    return _WEB_ADDRESS.match(value) is not None


def _date(value: str) -> datetime | None:
    parsed = feedparser_parse_date(value)
    if not parsed:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(parsed), UTC)
    except (OverflowError, ValueError, TypeError, OSError):
        return None


def _fallback_date(value: str) -> datetime | None:
    """feedparser's reading of a date, which the normaliser uses only when its own cannot read the
    text (dates.parse_date): not worked out for the dates it can, nearly all of them."""
    if not value or parse_date(value) is not None:
        return None
    return _date(value)


def _author_name(text: str) -> str:
    """feedparser's reading of an RSS author such as `jo@example.org (Jo)`: the name, else the email."""
    author, email = text, None
    match = _EMAIL.search(author)
    if match:
        email = match.group(0)
        author = author.replace(email, "").replace("()", "").replace("<>", "").replace("&lt;&gt;", "").strip()
        if author and author[0] == "(":
            author = author[1:]
        if author and author[-1] == ")":
            author = author[:-1]
        author = author.strip()
    return author or email or ""


class _EntryBuilder:
    """Collects one entry's fields in document order, as feedparser's event handlers would."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.id = ""
        self.link: str | None = None
        self.title: RawText | None = None
        self.summary: RawText | None = None
        self.content: list[RawText] = []
        self.authors: list[str] = []
        self.published = ""
        self.updated = ""
        self.tags: list[str] = []
        self.enclosures: list[Enclosure] = []
        self.seen: set[str] = set()
        self.atom_tags: set[tuple[str | None, str | None, str | None]] = set()

    def once(self, name: str) -> None:
        if name in self.seen:
            raise DeclineError  # which one feedparser keeps depends on nesting depth and element order
        self.seen.add(name)

    def set_id(self, value: str, is_link: bool) -> None:
        self.once("id")
        if value and is_link:
            value = _resolve(value)
        self.id = value
        if is_link and self.link is None and is_web_address(value):
            self.link = value

    def add_content(self, text: RawText) -> None:
        self.once("content")
        self.content.append(text)

    def add_summary(self, text: RawText) -> None:
        # A second summary would become a content in feedparser's eyes: declined by once().
        self.once("summary")
        self.summary = text

    def add_enclosure(self, attrs: dict[str, str], href: str | None) -> None:
        if not href:
            return
        length = read_count(attrs.get("length"), MAX_JSON_INTEGER) or 0
        self.enclosures.append(Enclosure(url=href, type=attrs.get("type") or "", length=length))

    def build(self) -> RawEntry:
        summary = self.summary
        published_parsed = _fallback_date(self.published)
        updated, updated_parsed = self.updated, _fallback_date(self.updated)
        return RawEntry(
            id=self.id,
            link=self.link or "",
            title=self.title,
            summary=summary,
            content=_best_content(self.content),
            authors=tuple(a for a in self.authors if a),
            published=self.published,
            updated=updated,
            published_parsed=published_parsed,
            updated_parsed=updated_parsed,
            tags=tuple(self.tags),
            enclosures=tuple(self.enclosures),
        )


def _best_content(contents: list[RawText]) -> RawText | None:
    for wanted in _HTML_TYPES:
        for content in contents:
            if content.type == wanted:
                return content
    return contents[0] if contents else None


# --- RSS 2.0 -----------------------------------------------------------------------------------------


def _read_rss(root: Any, url: str) -> RawFeed:
    channels = [child for child in root if child.tag == "channel"]
    if len(channels) != 1 or any(child.tag != "channel" for child in root if isinstance(child.tag, str)):
        raise DeclineError
    title: RawText | None = None
    link = language = ttl = None
    entries = []
    for child in channels[0]:
        tag = child.tag
        if not isinstance(tag, str):
            continue  # comments and processing instructions between elements
        if tag == "item":
            entries.append(_read_rss_item(child, url))
        elif entries and tag in ("title", "link", "language", "ttl", "image", "textInput", "textinput"):
            raise DeclineError  # feedparser's bookkeeping after items differs; rare enough to leave to it
        elif tag == "title":
            if title is not None:
                raise DeclineError
            title = _rss_title(child, url)
        elif tag == "link":
            if link is not None:
                raise DeclineError
            link = _text_of(child)
            link = _resolve(link) if link else link
        elif tag == "language":
            if language is not None:
                raise DeclineError
            language = _text_of(child)
        elif tag == "ttl":
            ttl = _text_of(child)
        elif tag.startswith("{"):
            namespace = tag[1:].split("}", 1)[0]
            if namespace == ATOM and tag == _ATOM_LINK and child.get("rel") == "self":
                continue
            if namespace not in _IGNORED_CHANNEL_NAMESPACES:
                raise DeclineError
        elif tag in ("image", "textInput", "textinput", "cloud", "category", "description", "generator", "docs",
                     "copyright", "managingEditor", "webMaster", "pubDate", "lastBuildDate", "rating",
                     "skipHours", "skipDays"):  # fmt: skip
            continue
        else:
            raise DeclineError
    if language is None:
        language = (root.get(XML_LANG) or "").replace("_", "-")
    return RawFeed(
        format="RSS 2.0",
        title=title.value if title else "",
        title_type=title.type if title else "text/plain",
        link=link or "",
        language=language,
        ttl=read_count(ttl, ONE_YEAR_MINUTES),
        entries=tuple(entries),
    )


def _rss_title(element: Any, url: str) -> RawText:
    """An RSS title is typed as feedparser types it: HTML when its text looks like HTML, else text."""
    if any(name.lower() == "type" for name in element.attrib):
        raise DeclineError  # feedparser takes a declared type (RSS has none) instead of guessing
    value = _text_of(element)
    return RawText(value=value, type="text/html" if _looks_like_html(value) else "text/plain", base=url)


def _read_rss_item(item: Any, url: str) -> RawEntry:
    entry = _EntryBuilder(url)
    for child in item:
        tag = child.tag
        if not isinstance(tag, str):
            continue
        if tag == "title":
            entry.once("title")
            entry.title = _rss_title(child, url)
        elif tag == "link":
            entry.once("link")
            value = _text_of(child)
            if value:
                value = _resolve(value).replace("&amp;", "&")
                value = _LINK_ENTITY.sub(r"&\g<1>", value)
            entry.link = value
        elif tag == "description":
            entry.add_summary(RawText(value=_text_of(child), type="text/html", base=url))
        elif tag == _CONTENT_ENCODED:
            entry.add_content(RawText(value=_text_of(child), type="text/html", base=url))
        elif tag == "guid":
            attrs = _attributes(child)
            entry.set_id(_text_of(child), attrs.get("ispermalink", "true") == "true")
        elif tag == "pubDate":
            entry.once("published")
            entry.published = _text_of(child)
        elif tag == _DC_DATE:
            entry.once("updated")
            entry.updated = _text_of(child)
        elif tag in ("author", _DC_CREATOR):
            entry.authors.append(_author_name(_text_of(child)))
        elif tag == "category":
            attrs = _attributes(child)
            if attrs.get("term") or attrs.get("label"):
                raise DeclineError
            value = _text_of(child)
            if value:
                entry.tags.append(value)
        elif tag == "enclosure":
            if len(child):
                raise DeclineError
            attrs = _attributes(child)
            entry.add_enclosure(attrs, attrs.get("url", attrs.get("uri", attrs.get("href"))))
        elif tag == "comments" or (tag.startswith("{") and tag[1:].split("}", 1)[0] in _IGNORED_ITEM_NAMESPACES):
            continue
        else:
            raise DeclineError
    return entry.build()


# --- Atom 1.0 ----------------------------------------------------------------------------------------


def _atom_text(element: Any, url: str) -> RawText:
    attrs = _attributes(element)
    kind = _ATOM_TEXT_TYPES.get(attrs.get("type", "text"))
    if kind is None or "src" in attrs:
        raise DeclineError  # XHTML, out-of-line or arbitrary media types
    return RawText(value=_text_of(element), type=kind, base=url)


def _atom_link(element: Any, url: str) -> tuple[str, dict[str, str], str | None]:
    """(rel, attributes, resolved href) with feedparser's defaults."""
    if len(element):
        raise DeclineError
    attrs = _attributes(element)
    rel = attrs.setdefault("rel", "alternate")
    attrs.setdefault("type", "application/atom+xml" if rel == "self" else "text/html")
    href = attrs.get("href", attrs.get("url", attrs.get("uri")))
    return rel, attrs, _resolve(href) if href is not None else None


def _is_html_alternate(rel: str, attrs: dict[str, str]) -> bool:
    kind = {"html": "text/html", "xhtml": "application/xhtml+xml"}.get(attrs["type"], attrs["type"])
    return rel == "alternate" and kind in _HTML_TYPES


def _read_atom(root: Any, url: str) -> RawFeed:
    title: RawText | None = None
    link: str | None = None
    feed_id: str | None = None
    entries = []
    for child in root:
        tag = child.tag
        if not isinstance(tag, str):
            continue
        if not tag.startswith(_ATOM_PREFIX):
            raise DeclineError
        name = tag[_ATOM_PREFIX_LENGTH:]
        if name == "entry":
            entries.append(_read_atom_entry(child, url))
        elif entries and name in ("title", "link"):
            raise DeclineError
        elif name == "title":
            if title is not None:
                raise DeclineError
            title = _atom_text(child, url)
        elif name == "link":
            rel, attrs, href = _atom_link(child, url)
            if href is None:
                raise DeclineError
            if _is_html_alternate(rel, attrs):
                link = href
        elif name == "id":
            if feed_id is not None:
                raise DeclineError
            feed_id = _resolve(_text_of(child))
            link = feed_id if link is None else link  # feedparser: an id is the link until a link says otherwise
        elif name in ("updated", "subtitle", "generator", "icon", "logo", "rights", "category", "author",
                      "contributor"):  # fmt: skip
            continue
        else:
            raise DeclineError
    language = root.get(XML_LANG) or ""
    return RawFeed(
        format="Atom 1.0",
        title=title.value if title else "",
        title_type=title.type if title else "text/plain",
        link=link or "",
        language=language.replace("_", "-"),
        entries=tuple(entries),
    )


def _read_atom_entry(element: Any, url: str) -> RawEntry:
    entry = _EntryBuilder(url)
    for child in element:
        tag = child.tag
        if not isinstance(tag, str):
            continue
        if not tag.startswith(_ATOM_PREFIX):
            raise DeclineError
        name = tag[_ATOM_PREFIX_LENGTH:]
        if name == "title":
            entry.once("title")
            entry.title = _atom_text(child, url)
        elif name == "id":
            entry.set_id(_text_of(child), True)
        elif name == "link":
            rel, attrs, href = _atom_link(child, url)
            if href is None:
                raise DeclineError
            if rel == "enclosure":
                entry.add_enclosure(attrs, href)
            elif _is_html_alternate(rel, attrs):
                entry.link = href
        elif name == "summary":
            entry.add_summary(_atom_text(child, url))
        elif name == "content":
            entry.add_content(_atom_text(child, url))
        elif name == "published":
            entry.once("published")
            entry.published = _text_of(child)
        elif name == "updated":
            entry.once("updated")
            entry.updated = _text_of(child)
        elif name == "author":
            entry.authors.append(_atom_author(child))
        elif name == "category":
            if len(child):
                raise DeclineError
            attrs = _attributes(child)
            value = _finish(child.text or "")
            if value and not attrs.get("term"):
                raise DeclineError  # feedparser would take the element text as the term
            # feedparser keeps one tag per distinct (term, scheme, label)
            identity = (attrs.get("term"), attrs.get("scheme", attrs.get("domain")), attrs.get("label"))
            if identity in entry.atom_tags:
                continue
            entry.atom_tags.add(identity)
            tag_value = attrs.get("term") or attrs.get("label")
            if tag_value:
                entry.tags.append(tag_value)
        elif name in ("contributor", "rights"):
            continue
        else:
            raise DeclineError
    return entry.build()


def _atom_author(element: Any) -> str:
    name = email = ""
    if (element.text or "").strip():
        raise DeclineError
    for child in element:
        tag = child.tag
        if not isinstance(tag, str):
            continue
        if tag == _ATOM_NAME:
            name = _text_of(child)
        elif tag == _ATOM_EMAIL:
            email = _text_of(child)
        elif tag != _ATOM_URI:
            raise DeclineError
        if (child.tail or "").strip():
            raise DeclineError
    return name or email
