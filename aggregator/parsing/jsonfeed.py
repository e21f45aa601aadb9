"""JSON Feed 1.0 / 1.1 (https://jsonfeed.org/version/1.1) into `RawFeed`; feedparser does not read it."""

from __future__ import annotations

import json
import re
from typing import Any

from aggregator.core.errors import ParseError
from aggregator.core.models import Enclosure, RawEntry, RawFeed, RawText
from aggregator.core.numbers import MAX_JSON_INTEGER, read_json_count

MAX_JSON_DEPTH = 64


def looks_like_json(body: bytes) -> bool:
    return body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"[")


def _depth_ok(body: bytes) -> bool:
    # json.loads recurses per nesting level; refuse absurd nesting before it can hit the recursion limit.
    depth = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x7B, 0x5B):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return False
        elif byte in (0x7D, 0x5D):
            depth -= 1
    return True


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _decode(body: bytes, charset: str | None) -> tuple[str, str]:
    """The text and a warning. JSON Feed is UTF-8; a `charset` (the feed's setting, else the server's
    header) is used when the body is not, and the operator's setting always wins."""
    if charset:
        try:
            return body.decode(charset, errors="replace").removeprefix("\ufeff"), ""
        except LookupError:
            pass  # an unknown name from a server header: read it as UTF-8
    try:
        return body.decode("utf-8-sig"), ""
    except UnicodeDecodeError:
        return body.decode("utf-8-sig", errors="replace"), "not valid UTF-8: undecodable bytes replaced"


_LONGEST_INTEGER = 4_000


def _json_integer(text: str) -> int | str:
    """A JSON integer as Python's, unless too long for Python to convert (4,300 digits): then its digits
    as written, which is what an id made of it reads as anyway, and no count (`size_in_bytes`...)."""
    return int(text) if len(text) <= _LONGEST_INTEGER else text


def parse_json_feed(body: bytes, url: str, charset: str | None = None, header_charset: str | None = None) -> RawFeed:
    """`charset` is the feed's own setting (wins); `header_charset` the server's, used only when the body is
    not UTF-8."""
    if not _depth_ok(body):
        raise ParseError(f"not a feed: JSON nested deeper than {MAX_JSON_DEPTH} levels")
    text, warning = _decode(body, charset)
    if warning and header_charset:
        text, warning = _decode(body, header_charset)
    try:
        document = json.loads(text, parse_int=_json_integer)
    except ValueError as error:
        raise ParseError(f"not a feed: invalid JSON ({error})") from None
    if isinstance(document, list):
        raise ParseError("not a feed: a JSON array, where a JSON Feed is an object")
    if not isinstance(document, dict):
        raise ParseError("not a feed: JSON without a jsonfeed.org version")
    declared = document.get("version")
    items = document.get("items")
    if "jsonfeed.org/version/" in _str(declared):
        version = _str(declared).rstrip("/").rsplit("/", 1)[-1]
    elif (bare := _bare_version(declared)) is not None and isinstance(items, list):
        # Some writers put the number where the spec wants the URL; with an items list, what else it is
        # meant to be is clear, and refusing it would lose the whole feed.
        version = bare
        notice = f"the JSON Feed version is {json.dumps(declared)}, not a https://jsonfeed.org/version/ URL"
        warning = f"{warning}; {notice}" if warning else notice
    else:
        raise ParseError("not a feed: JSON without a jsonfeed.org version")
    if not isinstance(items, list):
        raise ParseError("not a feed: JSON Feed without an items list")
    feed_authors = _authors(document)
    entries = tuple(_entry(item, url, feed_authors) for item in items if isinstance(item, dict))
    return RawFeed(
        format=f"JSON Feed {version}",
        title=_str(document.get("title")),
        link=_str(document.get("home_page_url")),
        language=_str(document.get("language")),
        entries=entries,
        warning=warning,
    )


_BARE_VERSION = re.compile(r"1(?:\.[0-9]{1,3})?")


def _bare_version(value: Any) -> str | None:
    """ "1.1", "1.0", "1" or the number 1.1: the JSON Feed 1 family written without its URL ("1.0" is "1",
    as in the URL of that version)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _BARE_VERSION.fullmatch(value.strip()):
        return None
    version = value.strip()
    return "1" if version in ("1.0", "1.00") else version


def _authors(node: dict[str, Any]) -> tuple[str, ...]:
    authors = node.get("authors")
    if not isinstance(authors, list):
        authors = [node["author"]] if isinstance(node.get("author"), dict) else []
    return tuple(_str(a.get("name")) for a in authors if isinstance(a, dict) and _str(a.get("name")))


def _entry(item: dict[str, Any], url: str, feed_authors: tuple[str, ...]) -> RawEntry:
    identifier = item.get("id")
    content_html, content_text = _str(item.get("content_html")), _str(item.get("content_text"))
    content = (
        RawText(content_html, "text/html", url)
        if content_html
        else RawText(content_text, "text/plain", url)
        if content_text
        else None
    )
    summary = _str(item.get("summary"))
    attachments: list[Any] = item["attachments"] if isinstance(item.get("attachments"), list) else []
    enclosures = tuple(
        Enclosure(
            url=_str(a.get("url")),
            type=_str(a.get("mime_type")),
            length=read_json_count(a.get("size_in_bytes"), MAX_JSON_INTEGER) or 0,
        )
        for a in attachments
        if isinstance(a, dict) and _str(a.get("url"))
    )
    tags: list[Any] = item["tags"] if isinstance(item.get("tags"), list) else []
    return RawEntry(
        # The spec asks for strings, and readers to make one of any other id (1.1: "coerce it to a string").
        id=str(identifier) if isinstance(identifier, str | int | float) and not isinstance(identifier, bool) else "",
        link=_str(item.get("url")) or _str(item.get("external_url")),
        title=RawText(_str(item.get("title")), "text/plain", url) if _str(item.get("title")) else None,
        summary=RawText(summary, "text/plain", url) if summary else None,
        content=content,
        authors=_authors(item) or feed_authors,
        published=_str(item.get("date_published")),
        updated=_str(item.get("date_modified")),
        tags=tuple(t for t in tags if isinstance(t, str) and t.strip()),
        enclosures=enclosures,
    )
