"""The page half of article extraction: an HTML page's bytes to a parsed tree ready for the extractors. Pure: no
HTTP, no SQLite.

A page is decoded with the project's own encoding rules (aggregator.core.encoding) plus its <meta> charset,
refused when its bytes say it is no HTML page, parsed once with lxml, trimmed by CSS selectors, and prepared for
trafilatura, whose vocabulary of class and id names is that of English sites: figcaptions made paragraphs,
inline styles out, layout tables made divs, the paragraphs' container named as trafilatura knows one.
aggregator.parsing.article does the extraction itself.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from urllib.parse import urljoin

import lxml.etree
import lxml.html
from cssselect import SelectorError

from aggregator.core.encoding import canonical, charset_from_content_type, decode_feed
from aggregator.core.errors import AggregatorError

__all__ = [
    "ExtractionError",
    "base_url",
    "captions_to_paragraphs",
    "decode_html",
    "mark_container",
    "meta_charset",
    "not_html",
    "parse_page",
    "remove_selected",
    "select_css",
    "unstyle",
    "unwrap_layout_tables",
]


class ExtractionError(AggregatorError):
    """Why a page gave no article, in one line (shown to the operator as it is)."""


# ---------------------------------------------------------------------------------------------------------
# Decoding

# <meta charset="x"> and <meta http-equiv="Content-Type" content="text/html; charset=x"> alike. Searched in
# the first 4 KB: the HTML standard's prescan reads 1 KB, but Chinese CMS pages often put long keyword and
# description metas first, and browsers find the declaration anyway.
_META_CHARSET = re.compile(rb"""<meta\b[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE)
_PRESCAN = 4096
# Single-byte Western codecs read any bytes without error, so a strict trial cannot reject them: a header that
# says ISO-8859-1 (many servers' default) is tried after any other declaration.
_PERMISSIVE = frozenset({"iso8859-1", "cp1252", "latin-1"})


def meta_charset(head: bytes) -> str | None:
    """The charset named by the page's own <meta>, if any (not checked to be a real codec)."""
    match = _META_CHARSET.search(head[:_PRESCAN])
    return match.group(1).decode("ascii") if match else None


def decode_html(body: bytes, content_type: str | None = None) -> tuple[str, str]:
    """(text, codec) of an HTML page.

    aggregator.core.encoding does the decoding (a BOM first, valid UTF-8 wins over any declaration, GB2312/GBK read as
    GB18030, Big5 as cp950, the Big5-or-GBK guess for undeclared pages); this adds the page's <meta>. Where the
    <meta> and the header disagree, the one whose codec decodes the whole body strictly wins, the <meta> first:
    the header is usually the server's default and the <meta> the author's. A declaration that fails on the
    body is ignored, so the page is read as if undeclared rather than by the next fallback in line."""
    declared: list[str] = []
    for name in (meta_charset(body), charset_from_content_type(content_type)):
        codec = canonical(name) if name else None
        # A <meta> naming UTF-16 in a page readable as ASCII is wrong by definition (the HTML standard reads it
        # as UTF-8); real UTF-16 pages carry a BOM, which decode_feed honours first.
        if codec and codec not in declared and not codec.startswith(("utf-16", "utf-32")):
            declared.append(codec)
    declared.sort(key=lambda codec: codec in _PERMISSIVE)  # stable: the <meta> stays ahead of the header
    for codec in declared:
        try:
            body.decode(codec)
        except (UnicodeDecodeError, LookupError):
            continue
        return decode_feed(body, f"text/html; charset={codec}")
    return decode_feed(body, None)


# ---------------------------------------------------------------------------------------------------------
# What is not an HTML page

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_LOOKS_HTML = re.compile(rb"<(?:!doctype\s+html|html|head|body|meta|title|div|p)\b", re.IGNORECASE)
_MAGIC = (
    (b"%PDF-", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"GIF8", "a GIF image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"RIFF", "a RIFF file (WebP image, audio or video)"),
    (b"PK\x03\x04", "a ZIP archive (or an office document)"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"{", "JSON"),
    (b"[", "JSON"),
)


def not_html(body: bytes, content_type: str | None) -> str | None:
    """Why this body is not an HTML page, or None. The bytes decide over the header, which lies both ways
    (HTML served as text/plain or application/octet-stream, PDFs served as text/html)."""
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head:
        return "empty page"
    if _LOOKS_HTML.search(head):
        return None
    mime = (content_type or "").split(";")[0].strip().lower()
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return f"not an HTML page: {what}" + (f" ({mime})" if mime else "")
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "not an HTML page: binary data" + (f" ({mime})" if mime else "")
    if mime and mime not in _HTML_TYPES:
        return f"not an HTML page ({mime})"
    return None


# ---------------------------------------------------------------------------------------------------------
# Parsing once, and preparing the tree

_PARSERS = threading.local()  # an lxml parser must not be used by two threads at once


def parse_page(text: str) -> lxml.html.HtmlElement | None:
    # Bytes with the encoding stated, not the str itself: lxml refuses a str that starts with an XML
    # declaration, and a stated encoding makes libxml2 ignore the page's (possibly lying) <meta charset>.
    parser = getattr(_PARSERS, "parser", None)
    if parser is None:
        parser = _PARSERS.parser = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True, remove_pis=True)
    try:
        root = lxml.html.document_fromstring(text.encode("utf-8", errors="replace"), parser=parser)
    except (lxml.etree.ParserError, ValueError):  # "Document is empty" and the like
        return None
    return root if isinstance(root, lxml.html.HtmlElement) else None


def base_url(root: lxml.html.HtmlElement, url: str) -> str:
    """Where the page's relative URLs point: its <base href> (itself relative to the page) or the page's URL."""
    for base in root.iter("base"):
        href = (base.get("href") or "").strip()
        if href:
            return urljoin(url, href)
    return url


def select_css(root: lxml.html.HtmlElement, selector: str, what: str) -> list[lxml.html.HtmlElement]:
    try:
        return list(root.cssselect(selector))
    except (SelectorError, lxml.etree.XPathError) as error:
        raise ExtractionError(f"invalid {what} {selector!r}: {error}") from None


def remove_selected(root: lxml.html.HtmlElement, selectors: Sequence[str]) -> None:
    for selector in selectors:
        for element in select_css(root, selector, "remove_selector"):
            if element.getparent() is not None:  # the root itself, or inside something already removed
                element.drop_tree()


def captions_to_paragraphs(root: lxml.html.HtmlElement) -> None:
    for caption in root.iter("figcaption"):
        caption.tag = "p"


_DISPLAY_NONE = re.compile(r"display\s*:\s*none", re.IGNORECASE)


def unstyle(root: lxml.html.HtmlElement) -> None:
    """Inline styles out, but display:none, which both extractors rightly take for hidden. trafilatura drops any
    element whose style mentions "hidden" or (favouring precision) "border": WeChat hides its whole article with
    visibility:hidden until a script shows it, and Chinese editors (135editor, Xiumi) draw headings with borders.
    The sanitiser drops style attributes anyway."""
    for element in root.xpath("//*[@style]"):
        if not _DISPLAY_NONE.search(element.get("style", "")):
            del element.attrib["style"]


# A class trafilatura's vocabulary takes for an article's container (xpaths.BODY_XPATH).
_CONTAINER_CLASS = "article-content"


def mark_container(root: lxml.html.HtmlElement) -> None:
    """Name the element that holds most of the page's paragraphs the way trafilatura knows an article: where its
    English-site vocabulary finds no container (Chinese sites say "zoom", "zw", "artibody", "js_content"), it
    falls back to gathering loose paragraphs, and drops every list and heading of the article on the way."""
    scores: dict[lxml.html.HtmlElement, float] = {}
    total = 0
    for element in root.iter("p", "br"):
        # A paragraph is a <p>, or the text after a <br> (older CMSs write "text<br><br>text").
        length = len(element.text_content().strip() if element.tag == "p" else (element.tail or "").strip())
        if length < 10:
            continue
        total += length
        # readability's scoring: the parent takes the paragraph's length, the grandparent half of it (WeChat and
        # its editors wrap each paragraph in a <section> of its own).
        parent = element.getparent()
        grandparent = parent.getparent() if parent is not None else None
        for element, share in ((parent, 1.0), (grandparent, 0.5)):
            if element is not None:
                scores[element] = scores.get(element, 0.0) + share * length
    if not scores:
        return
    best = max(scores, key=lambda element: scores[element])
    if best.tag in ("div", "section", "article", "main") and scores[best] >= 0.4 * total:
        best.set("class", f"{best.get('class', '')} {_CONTAINER_CLASS}".strip())


_PROSE = frozenset({"p", "div", "ul", "ol", "dl", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table"})


def unwrap_layout_tables(container: lxml.html.HtmlElement) -> bool:
    """Tables that lay a page out rather than hold data (a cell with a table or three blocks of prose in it, as on
    government sites built in the 2000s) made divs, innermost first; whether there was one. trafilatura reads a
    layout table as data: it keeps the whole page, and emits a data table nested in the article's cell after
    the page's last row, out of place."""
    changed = False
    for table in reversed(list(container.iter("table"))):
        cells = table.xpath("./tr/td | ./tr/th | ./*/tr/td | ./*/tr/th")
        if not any(
            cell.find(".//table") is not None or sum(1 for e in cell.iter() if e.tag in _PROSE) >= 3 for cell in cells
        ):
            continue
        for element in [table, *table.xpath("./* | ./tr | ./*/tr"), *cells]:
            element.tag = "div"
            element.attrib.clear()
        changed = True
    return changed
