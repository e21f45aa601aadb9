"""Differential test: the lxml fast path (aggregator/fastparse.py) against feedparser, the reference.

For every document the fast path accepts, parse.py must return the same RawFeed with and without it,
and the normaliser must produce the same entries from both. Documents it declines fall back to
feedparser, so they need no check here beyond "declining is allowed".
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest

from aggregator.core.dates import parse_date
from aggregator.core.encoding import to_utf8_document
from aggregator.core.errors import ParseError
from aggregator.core.models import RawFeed
from aggregator.parsing.document import defuse, parse_document
from aggregator.parsing.fastpath import parse_fast
from aggregator.parsing.normalize import normalize_feed
from tests.conftest import CORPUS, corpus_files

FETCHED_AT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _bundled_samples() -> list[tuple[str, bytes, str]]:
    folder = resources.files("aggregator.samples")
    return [
        (name, folder.joinpath(name).read_bytes(), "application/xml")
        for name in ("rss2.xml", "atom.xml", "zhongguoshuiwubao-gbk.xml")
    ]


def _compare(name: str, body: bytes, content_type: str) -> bool:
    """True when the fast path took the document; asserts it matched feedparser exactly."""
    url = f"http://127.0.0.1:8000/feeds/{name}"
    try:
        reference = parse_document(body, url, content_type, fast=False)
    except ParseError:
        reference = None
    try:
        quick = parse_document(body, url, content_type)
    except ParseError:
        quick = None
    if quick is None or reference is None:
        assert quick == reference, name
        return False
    assert _as_normalised(quick) == _as_normalised(reference), name
    ours = normalize_feed(quick, feed_url=url, fetched_at=FETCHED_AT)
    theirs = normalize_feed(reference, feed_url=url, fetched_at=FETCHED_AT)
    assert ours == theirs, name
    return _fast_path_accepts(body, url, content_type)


def _as_normalised(feed: RawFeed) -> RawFeed:
    """The feed without the parser's date readings the normaliser never uses: where dates.parse_date
    reads the text, the fast path leaves feedparser's reading out rather than work it out for nothing."""

    def unused(text: str, parsed: datetime | None) -> datetime | None:
        return None if parse_date(text) is not None else parsed

    entries = tuple(
        replace(
            entry,
            published_parsed=unused(entry.published, entry.published_parsed),
            updated_parsed=unused(entry.updated, entry.updated_parsed),
        )
        for entry in feed.entries
    )
    return replace(feed, entries=entries)


def _fast_path_accepts(body: bytes, url: str, content_type: str) -> bool:
    document, _ = to_utf8_document(body, content_type)
    return parse_fast(defuse(document), url, content_type.split(";")[0].strip()) is not None


def test_bundled_samples_take_the_fast_path_and_match_feedparser() -> None:
    accepted = [name for name, body, kind in _bundled_samples() if _compare(name, body, kind)]
    # The RSS 2.0 and Atom samples are plain well-formed feeds: the fast path must take them.
    assert "rss2.xml" in accepted or "atom.xml" in accepted


def test_benchmark_feeds_take_the_fast_path_and_match_feedparser() -> None:
    """The benchmark's RSS and Atom feeds (CJK, HTML bodies, categories, authors) all go the fast way."""
    import sys

    sys.path.insert(0, str(BENCHMARKS))
    try:
        from feedserver import FeedCorpus
    finally:
        sys.path.remove(str(BENCHMARKS))
    corpus = FeedCorpus(12, seed=3)
    corpus.mutate(0.5)
    for spec in corpus.specs:
        body, _etag = corpus.body(spec.index, compressed=False)
        kind = "application/atom+xml" if spec.atom else "application/rss+xml; charset=utf-8"
        assert _compare(f"bench-{spec.index}.xml", body, kind), spec.index


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"feedparser corpus not found at {CORPUS}")
def test_corpus_fast_path_matches_feedparser() -> None:
    files = [p for p in corpus_files() if p.suffix != ".json"]
    accepted = sum(_compare(path.name, path.read_bytes(), "application/xml") for path in files)
    # Enough of the corpus goes the fast way for this comparison to mean something.
    assert accepted > 500, accepted


@pytest.mark.parametrize(
    "document",
    [
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "x">]><rss version="2.0"><channel><title>&a;</title>'
        b"</channel></rss>",
        b'<rss version="0.91"><channel><title>t</title></channel></rss>',
        b'<rss version="2.0"><channel><item><title>a</title><title>b</title></item></channel></rss>',
        b'<feed xmlns="http://www.w3.org/2005/Atom" xml:base="http://x/"><title>t</title></feed>',
        b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><content type="xhtml"><div xmlns="http://www.w3.org/'
        b'1999/xhtml">x</div></content></entry></feed>',
        b'<rss version="2.0"><channel><item><description><p>raw markup</p></description></item></channel></rss>',
        b'<rss version="2.0"><channel><item><title>unclosed</item></channel></rss>',
        b'<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel><item><media:title>x'
        b"</media:title></item></channel></rss>",
    ],
)
def test_unusual_documents_are_declined(document: bytes) -> None:
    assert parse_fast(document, "http://127.0.0.1/feed.xml") is None


def test_text_content_and_titles_keep_their_angle_brackets_on_both_paths() -> None:
    # A text title or content is text: "<blink>" in it is four characters to show, on either parser. And
    # feedparser's copy of a content into an absent summary (typed as HTML, losing the content's type)
    # does not come back as a second, mangled summary.
    body = (
        b'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>'
        b"<id>urn:f</id><updated>2024-01-01T00:00:00Z</updated><entry><id>urn:e</id>"
        b'<title type="text">History of the &lt;blink&gt; tag</title><updated>2024-01-01T00:00:00Z</updated>'
        b'<content type="text">std::vector&lt;int&gt; &amp; Option&lt;T&gt;</content></entry></feed>'
    )
    url = "https://site.example/feed.atom"
    for fast in (True, False):
        [entry] = normalize_feed(
            parse_document(body, url, "application/atom+xml", fast=fast), feed_url=url, fetched_at=FETCHED_AT
        ).entries
        assert entry.title == "History of the <blink> tag", fast
        assert (entry.summary, entry.content) == ("", "<p>std::vector&lt;int&gt; &amp; Option&lt;T&gt;</p>"), fast


_ATOM_FEED = (
    '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">{title}<id>urn:f</id>'
    "<updated>2024-01-01T00:00:00Z</updated><entry><id>urn:e</id><title>e</title>"
    "<updated>2024-01-01T00:00:00Z</updated></entry></feed>"
)
_RSS_FEED = (
    '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>{title}<link>https://site.example/</link>'
    "<description>d</description><item><title>e</title><guid>e</guid></item></channel></rss>"
)


@pytest.mark.parametrize(
    ("document", "title", "fast_path"),
    [
        # A text title is text: its "<" and ">" are characters to show, on either parser.
        (_ATOM_FEED.format(title='<title type="text">A &lt;b&gt; C</title>'), "A <b> C", True),
        (
            _ATOM_FEED.format(title="<title>Option&lt;T&gt; &amp; Result&lt;T, E&gt;</title>"),
            "Option<T> & Result<T, E>",
            True,
        ),
        # RSS says nothing of a title's type: feedparser guesses, for the channel as for its items.
        (_RSS_FEED.format(title="<title>Generics: List&lt;T&gt;</title>"), "Generics: List<T>", True),
        (_RSS_FEED.format(title="<title>1 &lt; 2 &amp;&amp; 3 &gt; 2</title>"), "1 < 2 && 3 > 2", True),
        # Markup in an HTML title still goes, its escaped text stays.
        (
            _ATOM_FEED.format(title='<title type="html">A &lt;b&gt;bold&lt;/b&gt; List&amp;lt;T&amp;gt;</title>'),
            "A bold List<T>",
            True,
        ),
        (_RSS_FEED.format(title="<title>A &lt;b&gt;bold&lt;/b&gt; C</title>"), "A bold C", True),
        (
            _ATOM_FEED.format(
                title='<title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">A <b>bold</b> '
                "List&lt;T&gt;</div></title>"
            ),
            "A bold List<T>",
            False,
        ),
        # A type declared on an RSS title is feedparser's to read: the fast path leaves it alone.
        (_RSS_FEED.format(title='<title type="html">A &lt;b&gt; C</title>'), "A C", False),
    ],
)
def test_feed_titles_keep_text_angle_brackets_and_lose_html_markup_on_both_paths(
    document: str, title: str, fast_path: bool
) -> None:
    body = document.encode()
    assert _compare("title.xml", body, "application/xml") is fast_path
    url = "https://site.example/feed.xml"
    for fast in (True, False):
        parsed = normalize_feed(
            parse_document(body, url, "application/xml", fast=fast), feed_url=url, fetched_at=FETCHED_AT
        )
        assert parsed.title == title, fast


def _items(*items: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
        "<link>https://site.example/</link><description>d</description>"
        + "".join(f"<item><title>same</title><description>same</description>{item}</item>" for item in items)
        + "</channel></rss>"
    ).encode()


def test_a_guid_is_the_link_only_when_it_is_an_absolute_web_address_on_both_paths() -> None:
    cases = [
        ("<guid>abc123</guid>", ""),  # was https://site.example/abc123, a page that never existed
        ("<guid>/posts/7</guid>", ""),
        ("<guid>//site.example/posts/8</guid>", ""),
        ("<guid>urn:uuid:1225c695</guid>", ""),
        ("<guid>HTTPS://site.example/9</guid>", "https://site.example/9"),
        ("<guid>http://site.example/10</guid>", "http://site.example/10"),
        # isPermaLink is read as feedparser reads it: only "true" (the default) makes the guid a link.
        ('<guid isPermaLink="false">http://site.example/11</guid>', ""),
        ('<guid isPermaLink="False">http://site.example/12</guid>', ""),
        ('<guid isPermaLink="true">tag-13</guid>', ""),
        # A link of the item's own, relative or not, is its link as before.
        ("<guid>abc14</guid><link>http://site.example/14</link>", "http://site.example/14"),
        ("<link>/rel/15</link><guid>abc15</guid>", "https://site.example/rel/15"),
        ("<guid>abc16</guid><link>/rel/16</link>", "https://site.example/rel/16"),
    ]
    body = _items(*(item for item, _ in cases))
    url = "https://site.example/feed.xml"
    assert _compare("guids.xml", body, "application/rss+xml")
    for fast in (True, False):
        feed = normalize_feed(parse_document(body, url, "application/rss+xml", fast=fast), feed_url=url,
                              fetched_at=FETCHED_AT)  # fmt: skip
        assert [entry.link for entry in feed.entries] == [link for _, link in cases], fast
    # An Atom id is the link on the same terms.
    atom = (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>'
        "<id>urn:f</id><updated>2024-01-01T00:00:00Z</updated>"
        + "".join(
            f"<entry><id>{i}</id><title>e</title><updated>2024-01-01T00:00:00Z</updated></entry>"
            for i in ("123", "https://site.example/a", "tag:site.example,2024:b")
        )
        + "</feed>"
    ).encode()
    assert _compare("ids.atom", atom, "application/atom+xml")
    for fast in (True, False):
        feed = normalize_feed(parse_document(atom, url, "application/atom+xml", fast=fast), feed_url=url,
                              fetched_at=FETCHED_AT)  # fmt: skip
        assert [entry.link for entry in feed.entries] == ["", "https://site.example/a", ""], fast


def test_guid_author_and_category_holding_markup_keep_their_text_on_both_paths() -> None:
    body = _items(
        "<guid><p>abc123</p></guid><author><b>Jo</b> Bloggs</author><category><span>News</span></category>",
        '<guid isPermaLink="false">\n  <p>abc<i>124</i></p>\n</guid><category domain="d"><a href="/x">Tech</a>'
        "<!-- a comment --> &amp; more</category><author>Ann</author>",
        "<guid><![CDATA[<p>abc125</p>]]></guid><author>Al <b>&lt;al@site.example&gt;</b></author>",
    )
    url = "https://site.example/feed.xml"
    # Both parsers read the same text (the fast path takes the document whole).
    assert _compare("markup.xml", body, "application/rss+xml")
    for fast in (True, False):
        feed = normalize_feed(parse_document(body, url, "application/rss+xml", fast=fast), feed_url=url,
                              fetched_at=FETCHED_AT)  # fmt: skip
        # Items alike but for their guids stay apart: a lost guid made them one entry, keyed by their content.
        assert [entry.key for entry in feed.entries] == ["abc123", "abc124", "<p>abc125</p>"], fast
        assert [entry.author for entry in feed.entries] == ["Jo Bloggs", "Ann", "Al"], fast
        assert [entry.tags for entry in feed.entries] == [("News",), ("Tech & more",), ()], fast
        assert [entry.link for entry in feed.entries] == ["", "", ""], fast

    # An author made of name and e-mail elements is a person feedparser reads as such (the fast path leaves
    # it to feedparser): it stays as it was.
    body = _items("<guid>x</guid><author><name>Ann</name><email>ann@site.example</email></author>")
    for fast in (True, False):
        [entry] = normalize_feed(parse_document(body, url, "application/rss+xml", fast=fast), feed_url=url,
                                 fetched_at=FETCHED_AT).entries  # fmt: skip
        assert entry.author == "Ann", fast
