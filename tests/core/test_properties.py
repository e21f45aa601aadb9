"""Property-based tests: any text into the normaliser comes out safe and well-formed."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.core.dates import parse_date
from aggregator.core.models import RawEntry, RawText
from aggregator.core.sanitize import remove_control_characters
from aggregator.parsing.normalize import normalize_entry


class _AttributeCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.extend((tag, name.lower(), (value or "").strip().lower()) for name, value in attrs)


def _attributes(html: str) -> list[tuple[str, str, str]]:
    collector = _AttributeCollector()
    collector.feed(html)
    collector.close()
    return collector.found


NOW = datetime(2024, 1, 1, tzinfo=UTC)
XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
HOSTILE_BITS = st.sampled_from(
    [
        "<script>",
        "</script>",
        "javascript:",
        "JaVaScRiPt&#58;",
        " onerror=",
        "<img src=x ",
        "<a href=",
        '"',
        "'",
        ">",
        "<form action=",
        "&#x6A;avascript:",
        "<iframe",
        "\x00",
        "\x1b",
        "\ud800",
        "中文",
        "<svg onload=",
        "<style>",
    ]
)
TEXT = st.lists(st.one_of(st.text(max_size=20), HOSTILE_BITS), max_size=12).map("".join)


@settings(max_examples=300, deadline=None)
@given(title=TEXT, content=TEXT, link=TEXT, author=TEXT, kind=st.sampled_from(["text/html", "text/plain"]))
def test_any_text_normalises_to_safe_output(title: str, content: str, link: str, author: str, kind: str) -> None:
    entry = normalize_entry(
        RawEntry(id=title, link=link, title=RawText(title, kind), content=RawText(content, kind), authors=(author,)),
        feed_url="https://f.example/feed",
        document_url="https://f.example/feed",
        site_url="https://f.example/",
        fetched_at=NOW,
    )
    for text in (entry.title, entry.content, entry.author, entry.link, entry.key):
        assert not XML_FORBIDDEN.search(text)
    assert "\n" not in entry.title and entry.title == entry.title.strip()
    lowered = entry.content.lower()
    assert "<script" not in lowered and "<iframe" not in lowered and "<form" not in lowered and "<style" not in lowered
    for tag, name, value in _attributes(entry.content):
        assert not name.startswith("on"), (tag, name)
        if name in ("href", "src"):
            assert value.startswith(("http://", "https://", "mailto:")), (tag, name, value)
    assert entry.link == "" or entry.link.startswith(("http://", "https://"))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_date_text_parses_or_is_none(text: str) -> None:
    parsed = parse_date(text)
    assert parsed is None or parsed.tzinfo is not None


ANY_TEXT = st.text(max_size=60)


@settings(max_examples=150, deadline=None)
@given(title=ANY_TEXT, author=ANY_TEXT, body=TEXT, tag=ANY_TEXT, source=ANY_TEXT, key=ANY_TEXT)
def test_any_stored_text_publishes_as_well_formed_feeds(
    title: str, author: str, body: str, tag: str, source: str, key: str
) -> None:
    """Whatever reached the archive, the feed writer emits well-formed XML and valid JSON (no control
    characters, no lone surrogates) that still carries the title."""
    import json

    from lxml import etree

    from aggregator.core.models import StoredEntry
    from aggregator.publishing.feed_documents import FeedInfo, render_atom, render_json_feed, render_rss

    entry = StoredEntry(
        id="0123456789abcdef",
        feed_url="https://f.example/feed",
        category="news",
        key=key,
        link="https://f.example/1",
        title=title,
        author=author,
        summary=body,
        content=body,
        published=NOW,
        updated=None,
        date_flag="",
        tags=(tag,),
        enclosures=(),
        content_hash="x",
        revision=1,
        first_seen=NOW,
        last_seen=NOW,
        feed_title=source,
        feed_site_url="https://f.example/",
    )
    info = FeedInfo("news", title or "t", source, "https://archive.example.org/")
    tags = {"https://f.example/feed": (tag,)}
    atom = render_atom(info, [entry], tags, self_path="news.atom", prev_archive=None, is_archive=False)
    rss = render_rss(info, [entry], tags, self_path="news.rss")
    for document in (atom, rss):
        etree.fromstring(document, etree.XMLParser(resolve_entities=False))  # raises when not well-formed
    feed = json.loads(render_json_feed(info, [entry], tags, self_path="news.json"))
    assert feed["items"][0]["title"] == remove_control_characters(title)


URL_PARTS = st.sampled_from(
    ["a", "b.html", "/", "//", "..", ".", "?q=1", "#f", ":", "images", "x y", "%2F", "\\", "~u"]
)


@settings(max_examples=500, deadline=None)
@given(
    base=st.tuples(
        st.sampled_from(["https://site.example/", "http://h-1.example:8080/", "HTTP://Site.example/", "https://a@b/"]),
        st.lists(URL_PARTS, max_size=6),
    ).map(lambda pair: pair[0] + "".join(pair[1])),
    url=st.lists(URL_PARTS, max_size=6).map("".join),
)
def test_relative_resolver_agrees_with_urljoin(base: str, url: str) -> None:
    from urllib.parse import urljoin

    from aggregator.core.sanitize import RelativeResolver

    assert RelativeResolver(base)(url) == urljoin(base, url)


@given(st.text(alphabet=st.characters(max_codepoint=0x7F)) | st.text())
def test_control_characters_go_the_same_way_on_either_path(text: str) -> None:
    # ASCII text takes a bytes fast path; everything else the regex, which states the rule.
    expected = re.sub("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff\ud800-\udfff]", "", text)
    assert remove_control_characters(text) == expected


def _safe_url_by_urllib(url: str) -> str:
    """safe_url without its fast path: what urlsplit says of the URL."""
    from urllib.parse import urlsplit

    url = remove_control_characters(url).strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    return url if url and parts.scheme.lower() in ("http", "https") and parts.netloc else ""


@given(st.sampled_from(["http://", "https://", "HTTP://", "http:/", ""]).flatmap(lambda p: st.text().map(p.__add__)))
def test_safe_url_fast_path_agrees_with_urlsplit(url: str) -> None:
    from aggregator.core.sanitize import safe_url

    assert safe_url(url) == _safe_url_by_urllib(url)


def _email_utils_reading(text: str) -> datetime | None:
    import email.utils

    try:
        return email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


@settings(max_examples=400, deadline=None)
@given(
    weekday=st.sampled_from(["", "Wed, ", "Sun,", "xyz, "]),
    day=st.integers(0, 40),
    month=st.sampled_from(["Jan", "feb", "MAR", "Sep", "Dec", "Foo"]),
    year=st.integers(1000, 9999),
    clock=st.tuples(st.integers(0, 61), st.integers(0, 61), st.integers(0, 61)),
    zone=st.one_of(
        st.sampled_from(["GMT", "UT", "UTC", "Z", "-0000", "+0000", "EST"]),
        st.tuples(st.sampled_from("+-"), st.integers(0, 30), st.integers(0, 99)).map(
            lambda z: f"{z[0]}{z[1]:02d}{z[2]:02d}"
        ),
    ),
)
def test_the_quick_rfc822_reading_agrees_with_email_utils(
    weekday: str, day: int, month: str, year: int, clock: tuple[int, int, int], zone: str
) -> None:
    from aggregator.core.dates import _parse_common_rfc822

    text = f"{weekday}{day} {month} {year} {clock[0]:02d}:{clock[1]:02d}:{clock[2]:02d} {zone}"
    quick, reference = _parse_common_rfc822(text), _email_utils_reading(text)
    if quick is not None:
        assert reference is not None and quick == reference and quick.utcoffset() == reference.utcoffset()
    elif zone not in ("-0000", "EST"):  # the forms it leaves to email.utils: an unknown offset, a zone name
        assert reference is None, text  # every other date email.utils reads, the quick path reads too


@given(st.text(alphabet=st.sampled_from("ab 1.,。税务𠀀ア한\u3000\n")) | st.text())
def test_split_cjk_spaces_every_cjk_character(text: str) -> None:
    from aggregator.core.fulltext import _CJK_RUN, split_cjk

    # The form the search index was built with: each run of CJK characters spaced out and set apart.
    # Contentless index rows are deleted with the text they were indexed with, so it must never change.
    assert split_cjk(text) == _CJK_RUN.sub(lambda run: " " + " ".join(run.group()) + " ", text)
    assert re.sub(r"\s", "", split_cjk(text)) == re.sub(r"\s", "", text)


URI_PARTS = st.sampled_from(["http", "x+y", ":", "/", "//", "a", "1", "?", ""])


@given(st.lists(URI_PARTS, max_size=8).map("".join) | st.text())
def test_fast_uri_fix_is_feedparsers(uri: str) -> None:
    from aggregator.parsing.fastpath import _URI_FIXER, _resolve

    assert _resolve(uri) == _URI_FIXER.sub(r"\1\3", uri)


def test_redact_url_masks_credentials_and_secret_parameters_only() -> None:
    from aggregator.core.redact import redact_url

    assert redact_url("https://u:p@h.example/x?token=1&keyword=2&api_key=3;sig=4#k=5") == (
        "https://***@h.example/x?token=***&keyword=2&api_key=***;sig=***#k=5"
    )
    assert redact_url("error at http://h.example/feed?page=2: 404") == "error at http://h.example/feed?page=2: 404"
    assert redact_url("mail me@example.org") == "mail me@example.org"
    # Any scheme's credentials; a quoted address keeps its closing quote.
    assert redact_url("ftp://u:p@h.example/x") == "ftp://***@h.example/x"
    assert redact_url("feed 'https://h.example/f?token=abc' is already configured") == (
        "feed 'https://h.example/f?token=***' is already configured"
    )
    assert redact_url("http://user:s3@cret@host/private") == "http://***@host/private"  # urlsplit's reading
    # A raw "/", "?" or "#" in a password (it should be percent-encoded) hides it no better.
    for password in ("pa/ss?x", "pa?ss", "pa#ss", "p@ss/w?rd", "1/2", "pa/ss@"):
        for text in (f"https://user:{password}@host.example/feed", f"error: 'https://user:{password}@10.0.0.1:9/f'"):
            assert password not in redact_url(text), text
            assert "***@" in redact_url(text), text
    assert redact_url("https://user:pa/ss?x@host/feed") == "https://***@host/feed"
    # A port is no password: these addresses hold an "@" past their authority, and stay as they are.
    for text in (
        "https://host.example:8443/feed?author=jo@example.org",
        "https://mastodon.example/@jo.rss",
        "https://mastodon.example:443/@jo.rss",
        "http://[::1]:8080/x@y",
        "see https://h.example:80/a and mail jo@example.org",
    ):
        assert redact_url(text) == text


def test_json_logs_mask_secrets_in_tracebacks_too() -> None:
    import logging
    import sys

    from aggregator.cli.logsetup import JsonFormatter

    try:
        raise ValueError("bad https://user:s3cret@h.example/f?token=T0KEN")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("https://u:pw@h/",), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "s3cret" not in line and "T0KEN" not in line and "pw@" not in line and "***@h.example" in line
