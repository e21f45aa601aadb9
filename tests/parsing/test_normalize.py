"""The pure normaliser: identity, dates with their offset, safe HTML, plain titles, JSON Feed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from aggregator.core.dates import parse_date
from aggregator.core.errors import ParseError
from aggregator.core.models import Entry, RawEntry, RawFeed, RawText
from aggregator.core.sanitize import html_to_text
from aggregator.parsing.document import parse_document
from aggregator.parsing.normalize import entry_identity, normalize_entry, normalize_feed
from tests.feeds import item, rss

NOW = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


def normalise(raw: RawEntry, **kwargs: object) -> object:
    options = {"feed_url": "https://f.example/feed", "document_url": "https://f.example/feed", "site_url": ""}
    options.update(kwargs)
    return normalize_entry(raw, fetched_at=NOW, **options)  # type: ignore[arg-type]


def test_identity_prefers_guid_then_link_then_content_hash() -> None:
    with_id = normalise(RawEntry(id="1234", link="https://x/1", title=RawText("t")))
    assert with_id.key == "1234"
    assert with_id.id == entry_identity("https://f.example/feed", "1234")
    assert normalise(RawEntry(link="https://x/1", title=RawText("t"))).key == "https://x/1"
    a = normalise(RawEntry(title=RawText("t"), content=RawText("<p>c</p>")))
    b = normalise(RawEntry(title=RawText("t"), content=RawText("<p>c</p>")))
    assert a.key == b.key and a.key.startswith("sha256:")


def test_dates_keep_the_source_offset_and_missing_or_absurd_dates_are_flagged() -> None:
    entry = normalise(RawEntry(id="a", published="Wed, 16 Mar 2022 08:54:16 +0800"))
    assert entry.published.isoformat() == "2022-03-16T08:54:16+08:00" and entry.date_flag == ""
    assert normalise(RawEntry(id="a")).date_flag == "missing"
    future = normalise(RawEntry(id="a", published="2999-01-01T00:00:00Z"))
    assert future.published == NOW and future.date_flag == "future"
    ancient = normalise(RawEntry(id="a", published="0001-01-01T00:00:00Z"))
    assert ancient.published == NOW and ancient.date_flag == "ancient"
    fallback = normalise(RawEntry(id="a", published="some odd text", published_parsed=NOW - timedelta(days=1)))
    assert fallback.published == NOW - timedelta(days=1)


def test_naive_dates_use_the_feed_timezone() -> None:
    entry = normalise(RawEntry(id="a", published="2022-03-16 08:54:16"), naive_zone=ZoneInfo("Asia/Shanghai"))
    assert entry.published.isoformat() == "2022-03-16T08:54:16+08:00"


@pytest.mark.parametrize(
    "hostile",
    [
        '<a href="JaVaScRiPt&#58;alert(1)">x</a>',
        '<form action="javascript:alert(1)"><button>go</button></form>',
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        '<a href="  javascript:alert(1)">x</a>',
        '<iframe src="https://evil.example"></iframe>',
        '<svg onload="alert(1)"></svg>',
        '<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>',
        '<div style="background:url(javascript:alert(1))">x</div>',
    ],
)
def test_html_is_sanitised(hostile: str) -> None:
    entry = normalise(RawEntry(id="a", content=RawText(hostile), summary=RawText(hostile)))
    for text in (entry.content, entry.summary):
        lowered = text.lower()
        assert "javascript" not in lowered and "<script" not in lowered and "onerror" not in lowered
        assert (
            "<form" not in lowered and "<iframe" not in lowered and "data:" not in lowered and "style=" not in lowered
        )


def test_links_are_absolute_and_only_http() -> None:
    entry = normalise(
        RawEntry(id="a", link="javascript:alert(1)", content=RawText('<a href="../x">x</a><img src="i.png">')),
        site_url="https://site.example/blog/",
    )
    assert entry.link == ""
    assert 'href="https://site.example/x"' in entry.content
    assert 'src="https://site.example/blog/i.png"' in entry.content
    relative = normalise(RawEntry(id="b", link="/post/1"), site_url="https://site.example/blog/")
    assert relative.link == "https://site.example/post/1"


def test_titles_are_plain_text_without_control_characters() -> None:
    entry = normalise(RawEntry(id="a", title=RawText("Bad\x00\x01\x1b title <script>x</script>&amp; <b>bold</b>")))
    assert entry.title == "Bad title & bold"
    # A text title is text: its "<" are characters (every output escapes titles), not markup to drop.
    for text in ("std::vector<int> & Option<T>", "History of the <blink> tag", "if a<b and c>d"):
        assert normalise(RawEntry(id="b", title=RawText(text, type="text/plain"))).title == text
    text_title = normalise(RawEntry(id="c", title=RawText("\x00<b>Hi</b>\n there", type="text/plain")))
    assert text_title.title == "<b>Hi</b> there"


def test_plain_text_content_is_escaped() -> None:
    entry = normalise(RawEntry(id="a", content=RawText("a <script>x</script>\n\nsecond", type="text/plain")))
    assert entry.content == "<p>a &lt;script&gt;x&lt;/script&gt;</p>\n<p>second</p>"


def test_duplicate_ids_keep_the_first() -> None:
    feed = RawFeed(
        format="RSS 2.0", entries=(RawEntry(id="1", title=RawText("first")), RawEntry(id="1", title=RawText("second")))
    )
    parsed = normalize_feed(feed, feed_url="https://f.example/feed", fetched_at=NOW)
    assert [e.title for e in parsed.entries] == ["first"] and parsed.duplicates == 1


def test_a_feed_title_loses_markup_only_when_it_is_html() -> None:
    def title(value: str, kind: str) -> str:
        raw = RawFeed(format="Atom 1.0", title=value, title_type=kind)
        return normalize_feed(raw, feed_url="https://f.example/feed", fetched_at=NOW).title

    assert title("Generics: List<T> \x00 <b>x</b>", "text/plain") == "Generics: List<T> <b>x</b>"
    assert title("A <b>bold</b> List&lt;T&gt;", "text/html") == "A bold List<T>"
    assert title("A <b>bold</b> List&lt;T&gt;", "application/xhtml+xml") == "A bold List<T>"
    assert title("x" * 2000, "text/plain") == "x" * 1000
    # JSON Feed's title is plain text, as its items' titles are.
    document = {"version": "https://jsonfeed.org/version/1.1", "title": "Option<T> & <b>", "items": []}
    raw = parse_document(json.dumps(document).encode(), "https://j.example/feed.json")
    assert normalize_feed(raw, feed_url="https://j.example/feed.json", fetched_at=NOW).title == "Option<T> & <b>"


def test_json_feed() -> None:
    document = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "JSON",
        "home_page_url": "https://j.example/",
        "authors": [{"name": "Feed Author"}],
        "items": [
            {
                "id": 1,
                "url": "https://j.example/1",
                "title": "标题",
                "content_html": "<p>hi<script>x</script></p>",
                "date_published": "2022-03-16T08:54:16+08:00",
                "tags": ["t"],
                "attachments": [{"url": "https://j.example/a.mp3", "mime_type": "audio/mpeg", "size_in_bytes": 5}],
            },
            {"id": "2", "content_text": "plain & simple", "date_modified": "2022-03-17T00:00:00Z"},
        ],
    }
    raw = parse_document(json.dumps(document).encode(), "https://j.example/feed.json")
    parsed = normalize_feed(raw, feed_url="https://j.example/feed.json", fetched_at=NOW)
    first, second = parsed.entries
    assert parsed.format == "JSON Feed 1.1"
    assert (first.key, first.title, first.content, first.author) == ("1", "标题", "<p>hi</p>", "Feed Author")
    assert first.published.isoformat() == "2022-03-16T08:54:16+08:00"
    assert first.enclosures[0].url == "https://j.example/a.mp3" and first.tags == ("t",)
    assert second.content == "<p>plain &amp; simple</p>"


def test_json_feed_in_another_encoding_and_with_odd_ids() -> None:
    # JSON Feed is UTF-8, but a GBK one exists: the feed's `charset` setting wins, else the server's
    # header is used once the body turns out not to be UTF-8; ids of any JSON number become strings.
    document = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "国家税务总局",
        "items": [{"id": 3.5, "title": "留抵退税", "content_text": "征管改革"}],
    }
    body = json.dumps(document, ensure_ascii=False).encode("gbk")
    for charset, content_type in (("gbk", None), (None, "application/feed+json; charset=GBK")):
        raw = parse_document(body, "https://j.example/feed.json", content_type, charset)
        [entry] = normalize_feed(raw, feed_url="https://j.example/feed.json", fetched_at=NOW).entries
        assert (raw.title, entry.title, entry.key, raw.warning) == ("国家税务总局", "留抵退税", "3.5", "")
    garbled = parse_document(body, "https://j.example/feed.json")
    assert garbled.warning == "not valid UTF-8: undecodable bytes replaced"  # said, where it was silent
    # Integers too long for Python to convert neither reject the feed nor become counts.
    huge = "9" * 5000
    body = (
        '{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": ' + huge + ', "content_text": "x",'
        ' "attachments": [{"url": "https://j.example/a.mp3", "mime_type": "audio/mpeg", "size_in_bytes": '
        + huge
        + "}]}]}"
    ).encode()
    [entry] = normalize_feed(parse_document(body, "https://j.example/f.json"), feed_url="f", fetched_at=NOW).entries
    assert entry.key.startswith("sha256:") and entry.enclosures[0].length == 0  # a long key is hashed


def test_json_feed_with_a_bare_version_number_is_read_and_says_so() -> None:
    item_ = {"id": "1", "content_text": "x"}
    attachment = {"url": "https://j.example/a.mp3", "mime_type": "audio/mpeg", "size_in_bytes": 5000000.0}
    for version, format_ in (
        ("1.1", "JSON Feed 1.1"),
        ("1.0", "JSON Feed 1"),
        ("1", "JSON Feed 1"),
        (1.1, "JSON Feed 1.1"),
    ):
        document = {"version": version, "title": "t", "items": [item_ | {"attachments": [attachment]}]}
        raw = parse_document(json.dumps(document).encode(), "https://j.example/feed.json")
        assert raw.format == format_
        assert raw.warning == f"the JSON Feed version is {json.dumps(version)}, not a https://jsonfeed.org/version/ URL"
        [entry] = normalize_feed(raw, feed_url="https://j.example/feed.json", fetched_at=NOW).entries
        # A whole number written as a float (JavaScript and many JSON writers do) is still a byte count.
        assert entry.enclosures[0].length == 5000000
    for version in ("2.0", "1.1beta", None, True):
        body = json.dumps({"version": version, "items": []}).encode()
        with pytest.raises(ParseError, match=r"JSON without a jsonfeed\.org version"):
            parse_document(body, "https://j.example/feed.json")
    # Without an items list, a "version": "1.0" is any JSON document's (an API's, a manifest's).
    with pytest.raises(ParseError, match=r"JSON without a jsonfeed\.org version"):
        parse_document(b'{"version": "1.0", "items": {}}', "https://j.example/feed.json")
    sizes = [5000000.5, -1.0, 1e300, float("inf"), float("nan"), 7]
    document = {
        "version": "https://jsonfeed.org/version/1.1",
        "items": [
            {
                "id": "1",
                "attachments": [{"url": f"https://j.example/{n}", "size_in_bytes": s} for n, s in enumerate(sizes)],
            }
        ],
    }
    raw = parse_document(json.dumps(document).encode(), "https://j.example/feed.json")
    assert [e.length for e in raw.entries[0].enclosures] == [0, 0, 2**53 - 1, 0, 0, 7]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty body"),
        (b"   \n", "empty body"),
        (b"<!DOCTYPE html><html><body>x</body></html>", "HTML page"),
        (b'{"not": "a feed"}', "JSON without a jsonfeed.org version"),
        (b'[{"id": 1}]', "a JSON array, where a JSON Feed is an object"),
        (b"{" * 10000, "nested deeper"),
        (b"\x00\x01\x02binary garbage\xff\xfe", "not a feed"),
    ],
)
def test_not_a_feed(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_document(body, "https://f.example/feed")


def test_feedparser_never_opens_a_path_or_url_given_as_body(tmp_path: object) -> None:
    for body in (b"/etc/passwd", b"http://127.0.0.1:9/feed.xml", b"file:///etc/passwd"):
        with pytest.raises(ParseError):
            parse_document(body, "https://f.example/feed")


def test_forbidden_character_references_become_replacement_characters() -> None:
    """&#xD800; makes feedparser raise; the feed must still be read, with the bad reference replaced."""
    body = rss([item(1, title="bad &#xD800; and &#0; ref")]).replace(b"&amp;#", b"&#")
    parsed = normalize_feed(parse_document(body, "https://f.example/"), feed_url="https://f.example/", fetched_at=NOW)
    assert [e.title for e in parsed.entries] == ["bad \ufffd and \ufffd ref"]


def _feed(*entries: RawEntry) -> RawFeed:
    return RawFeed(format="RSS 2.0", link="https://f.example/", entries=entries)


def test_an_entry_the_archive_holds_with_the_same_fingerprint_is_not_normalised_again() -> None:
    feed_url = "https://f.example/feed"
    first = normalize_feed(
        _feed(RawEntry(id="a", summary=RawText("<p>A</p>")), RawEntry(id="b", summary=RawText("<p>B</p>"))),
        feed_url=feed_url,
        fetched_at=NOW,
    )
    stored = {entry.id: entry.raw_hash for entry in first.entries}
    assert all(stored.values()) and len(set(stored.values())) == 2
    again = _feed(
        RawEntry(id="a", summary=RawText("<p>A</p>"), published="Thu, 17 Mar 2022 08:00:00 +0800"),  # re-dated only
        RawEntry(id="b", summary=RawText("<p>B, corrected</p>")),
        RawEntry(id="c", summary=RawText("<p>C</p>")),
    )
    second = normalize_feed(again, feed_url=feed_url, fetched_at=NOW, known=stored)
    assert [entry_id for entry_id, _ in second.unchanged] == [entry_identity(feed_url, "a")]
    assert [entry.key for entry in second.entries] == ["b", "c"]
    assert second.entries[0].raw_hash != stored[entry_identity(feed_url, "b")]
    # Without what the archive holds, or with an entry stored before fingerprints were kept, all is normalised.
    assert [e.key for e in normalize_feed(again, feed_url=feed_url, fetched_at=NOW).entries] == ["a", "b", "c"]
    older = {entry_id: None for entry_id in stored}
    assert normalize_feed(again, feed_url=feed_url, fetched_at=NOW, known=older).unchanged == ()


def test_a_fingerprint_covers_what_decides_key_and_content_but_not_dates() -> None:
    from aggregator.parsing.normalize import raw_fingerprint

    entry = RawEntry(id="a", link="x/1", summary=RawText("<a href='p'>A</a>"), tags=("t",))
    base = raw_fingerprint(entry, "https://f.example/feed", "https://f.example/feed", "https://f.example/")
    assert base == raw_fingerprint(
        RawEntry(id="a", link="x/1", summary=RawText("<a href='p'>A</a>"), tags=("t",), updated="2022-03-16T00:00Z"),
        "https://f.example/feed",
        "https://f.example/feed",
        "https://f.example/",
    )
    # Relative links resolve against the site: another site makes other HTML.
    assert base != raw_fingerprint(entry, "https://f.example/feed", "https://f.example/feed", "https://g.example/")
    assert base != raw_fingerprint(
        RawEntry(id="a", link="x/1", summary=RawText("<a href='p'>A</a>"), tags=("t", "u")),
        "https://f.example/feed",
        "https://f.example/feed",
        "https://f.example/",
    )
    # Fields are kept apart: moving text from one field to the next is a change, whatever it holds.
    assert raw_fingerprint(RawEntry(authors=("a\x00", "b")), "u", "u", "") != raw_fingerprint(
        RawEntry(authors=("a", "\x00b")), "u", "u", ""
    )
    assert raw_fingerprint(RawEntry(authors=("Jo", "\x02"), tags=("news",)), "u", "u", "") != raw_fingerprint(
        RawEntry(authors=("Jo",), tags=("\x02", "news")), "u", "u", ""
    )
    assert raw_fingerprint(RawEntry(title=None, summary=RawText("0")), "u", "u", "") != raw_fingerprint(
        RawEntry(title=RawText("0"), summary=None), "u", "u", ""
    )


def test_a_known_entry_still_claims_its_key_against_a_later_duplicate() -> None:
    feed_url = "https://f.example/feed"
    first = normalize_feed(_feed(RawEntry(id="a", summary=RawText("A"))), feed_url=feed_url, fetched_at=NOW)
    known = {entry.id: entry.raw_hash for entry in first.entries}
    doubled = _feed(RawEntry(id="a", summary=RawText("A")), RawEntry(id="a", summary=RawText("A, other")))
    parsed = normalize_feed(doubled, feed_url=feed_url, fetched_at=NOW, known=known)
    assert (parsed.entries, parsed.duplicates) == ((), 1)
    assert [entry_id for entry_id, _ in parsed.unchanged] == [entry_identity(feed_url, "a")]


def test_plain_text_keeps_paragraphs_apart_and_reads_lowercase_rfc3339() -> None:
    # Search snippets and JSON summaries are made of this text: "a</p><p>b" must not become "ab".
    assert html_to_text("<p>a</p><p>b</p><li>c</li>x<br>y") == "a b c x y"
    assert html_to_text("<b>Bold</b>ness") == "Boldness"  # inline tags glue, as a browser shows them
    # RFC 3339 allows a lowercase "t" and "z"; JSON Feed dates have no other reader to fall back on.
    assert parse_date("2024-03-01t10:00:00z") == datetime(2024, 3, 1, 10, 0, tzinfo=UTC)


def test_legacy_chinese_encodings_read_as_their_writers_meant() -> None:
    from aggregator.core.encoding import decode_feed

    def document(declared: str, text: str, codec: str) -> bytes:
        return f'<?xml version="1.0" encoding="{declared}"?><rss><title>{text}</title></rss>'.encode(codec)

    # Big5 as Taiwanese sites write it (cp950): the ETEN kana and circled digits stay what they are.
    assert "台灣の味①" in decode_feed(document("big5", "台灣の味①", "cp950"))[0]
    # Hong Kong characters that cp950 lacks are still read, as HKSCS.
    assert "㗎" in decode_feed(document("big5", "㗎", "big5hkscs"))[0]
    # UTF-8 labelled GBK (by the declaration or the server) is UTF-8: GB18030 would read it "strictly".
    assert "中国税务" in decode_feed(document("gbk", "中国税务", "utf-8"))[0]
    body = "<rss><title>中国税务</title></rss>".encode()
    assert "中国税务" in decode_feed(body, "text/xml; charset=gbk")[0]
    # Real GBK is still GBK.
    assert "中国税务" in decode_feed(document("gbk", "中国税务", "gbk"))[0]


def test_chinese_spacing_and_dates_survive_normalising() -> None:
    from zoneinfo import ZoneInfo

    from aggregator.parsing.document import parse_document
    from aggregator.parsing.normalize import normalize_feed

    rss = (
        "<rss version='2.0'><channel><title>税务</title><link>http://a.example/</link>"
        "<item><title>中国\u3000税务</title><link>http://a.example/1</link><author>欧阳\u3000修</author>"
        "<category>中国\u3000税务</category><pubDate>2022/03/16 08:54:16</pubDate></item>"
        "<item><title>二</title><link>http://a.example/2</link><pubDate>2022年3月16日 8:54</pubDate></item>"
        "</channel></rss>"
    ).encode()
    feed = normalize_feed(
        parse_document(rss, "http://a.example/f"),
        feed_url="http://a.example/f",
        fetched_at=datetime(2023, 1, 1, tzinfo=UTC),
        naive_zone=ZoneInfo("Asia/Shanghai"),
    )
    first, second = feed.entries
    assert (first.title, first.author, first.tags) == ("中国\u3000税务", "欧阳\u3000修", ("中国\u3000税务",))
    assert first.published.isoformat() == "2022-03-16T08:54:16+08:00" and first.date_flag == ""
    assert second.published.isoformat() == "2022-03-16T08:54:00+08:00"
    assert parse_date("2022/03/16 08:54 +2500") is None  # an impossible offset is no date, not a failed feed
    json_feed = (
        '{"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": [{"id": "1", '
        '"content_text": "\\u3000\\u3000第一段。\\n\\n\\u3000\\u3000第二段。"}]}'
    ).encode()
    entry = normalize_feed(parse_document(json_feed, "http://a.example/j"), feed_url="j", fetched_at=datetime.now(UTC))
    assert entry.entries[0].content == "<p>\u3000\u3000第一段。</p>\n<p>\u3000\u3000第二段。</p>"


@pytest.mark.parametrize("version", ["2.0", "0.91"])  # the fast parser, and feedparser
def test_cst_is_china_standard_time_for_a_chinese_source_and_us_central_elsewhere(version: str) -> None:
    from zoneinfo import ZoneInfo

    from aggregator.parsing.document import parse_document
    from aggregator.parsing.normalize import normalize_feed

    def published(language: str, zone: ZoneInfo | None = None, date: str = "Wed, 16 Mar 2022 08:54:16 CST") -> str:
        rss = (
            f"<rss version='{version}'><channel><title>t</title><link>http://a.example/</link>"
            f"<description>d</description>{language}<item><title>x</title><link>http://a.example/1</link>"
            f"<description>d</description><pubDate>{date}</pubDate></item></channel></rss>"
        ).encode()
        options = {"naive_zone": zone} if zone else {}
        raw = parse_document(rss, "http://a.example/f")
        feed = normalize_feed(raw, feed_url="f", fetched_at=datetime(2023, 1, 1, tzinfo=UTC), **options)
        return feed.entries[0].published.isoformat()

    assert published("<language>zh-cn</language>") == "2022-03-16T08:54:16+08:00"
    assert published("<language>zh-TW</language>") == "2022-03-16T08:54:16+08:00"
    assert published("", ZoneInfo("Asia/Shanghai")) == "2022-03-16T08:54:16+08:00"  # the feed's timezone setting
    assert published("<language>en-us</language>") == "2022-03-16T08:54:16-06:00"
    assert published("", ZoneInfo("America/Chicago")) == "2022-03-16T08:54:16-06:00"
    # Names the zone does not use keep their usual meaning; a written offset always wins.
    assert published("<language>zh-cn</language>", date="Wed, 16 Mar 2022 08:54:16 EST") == "2022-03-16T08:54:16-05:00"
    assert published("", ZoneInfo("Asia/Kolkata"), "Wed, 16 Mar 2022 08:54:16 IST") == "2022-03-16T08:54:16+05:30"
    assert published("<language>zh</language>", date="Wed, 16 Mar 2022 08:54:16 +0900") == "2022-03-16T08:54:16+09:00"


def _dated(version: str, date: str, language: str = "", zone: ZoneInfo | None = None) -> Entry:
    rss = (
        f"<rss version='{version}'><channel><title>t</title><link>http://a.example/</link>"
        f"<description>d</description>{language}<item><title>x</title><link>http://a.example/1</link>"
        f"<description>d</description><pubDate>{date}</pubDate></item></channel></rss>"
    ).encode()
    options = {"naive_zone": zone} if zone else {}
    raw = parse_document(rss, "http://a.example/f")
    [entry] = normalize_feed(raw, feed_url="f", fetched_at=datetime(2026, 1, 1, tzinfo=UTC), **options).entries
    return entry


@pytest.mark.parametrize("version", ["2.0", "0.91"])  # the fast parser, and feedparser
@pytest.mark.parametrize(
    ("zone", "offset"),
    [
        ("CEST", "+02:00"),
        ("CET", "+01:00"),
        ("MESZ", "+02:00"),
        ("BST", "+01:00"),
        ("WEST", "+01:00"),
        ("EEST", "+03:00"),
        ("MSK", "+03:00"),
        ("JST", "+09:00"),
        ("KST", "+09:00"),
        ("HKT", "+08:00"),
        ("SGT", "+08:00"),
        ("AEST", "+10:00"),
        ("AEDT", "+11:00"),
        ("ACST", "+09:30"),
        ("AWST", "+08:00"),
        ("NZST", "+12:00"),
        ("NZDT", "+13:00"),
        ("HST", "-10:00"),
        ("cest", "+02:00"),
        ("GMT", "+00:00"),
        ("EDT", "-04:00"),
    ],
)
def test_named_time_zones_are_read_at_their_offset(version: str, zone: str, offset: str) -> None:
    for date in (
        f"Tue, 15 Jul 2025 10:00:00 {zone}",
        f"2025-07-15 10:00:00 {zone}",
        f"Tue Jul 15 10:00:00 {zone} 2025",
    ):
        entry = _dated(version, date)
        assert (entry.published.isoformat(), entry.date_flag) == (f"2025-07-15T10:00:00{offset}", ""), date
    # An offset written beside the name is the offset.
    entry = _dated(version, f"Tue, 15 Jul 2025 10:00:00 +0530 {zone}")
    assert entry.published.isoformat() == "2025-07-15T10:00:00+05:30"


@pytest.mark.parametrize("version", ["2.0", "0.91"])
def test_an_ambiguous_or_unknown_zone_follows_the_feeds_zone_or_is_flagged(version: str) -> None:
    # IST is India's, Ireland's and Israel's: the feed's timezone or language tells which, else it is flagged.
    ist = "Tue, 15 Jul 2025 10:00:00 IST"
    assert _dated(version, ist, zone=ZoneInfo("Asia/Kolkata")).published.isoformat() == "2025-07-15T10:00:00+05:30"
    assert _dated(version, ist, zone=ZoneInfo("Europe/Dublin")).published.isoformat() == "2025-07-15T10:00:00+01:00"
    winter = "Wed, 15 Jan 2025 10:00:00 IST"  # Israel's summer time is IDT
    assert _dated(version, winter, zone=ZoneInfo("Asia/Jerusalem")).published.isoformat() == "2025-01-15T10:00:00+02:00"
    for language, date, expected in (
        ("en-IN", ist, "2025-07-15T10:00:00+05:30"),
        ("hi", ist, "2025-07-15T10:00:00+05:30"),
        ("he", winter, "2025-01-15T10:00:00+02:00"),
        ("en-ie", ist, "2025-07-15T10:00:00+01:00"),
    ):
        entry = _dated(version, date, f"<language>{language}</language>")
        assert (entry.published.isoformat(), entry.date_flag) == (expected, ""), language
    for date in (ist, "Tue, 15 Jul 2025 10:00:00 XYZT", "Tue, 15 Jul 2025 10:00:00 A", "2025-07-15 10:00:00 IST"):
        entry = _dated(version, date, "<language>en</language>")
        # Read as the feed's zone (UTC, unset), never silently: the flag says the offset is a guess.
        assert (entry.published.isoformat(), entry.date_flag) == ("2025-07-15T10:00:00+00:00", "zone"), date
        entry = _dated(version, date, zone=ZoneInfo("America/New_York"))
        assert (entry.published.isoformat(), entry.date_flag) == ("2025-07-15T10:00:00-04:00", "zone"), date
    # A date past tomorrow is still "future", whatever its zone.
    assert _dated(version, "Tue, 15 Jul 2031 10:00:00 IST").date_flag == "future"


def test_a_parsers_reading_of_a_date_ending_in_a_zone_name_it_does_not_know_is_a_guess() -> None:
    from aggregator.core.dates import names_unknown_zone

    # feedparser reads any name it does not know as UTC: where its reading is used, such a date is flagged.
    for text in ("15 July 2025 10:00:00 CEST", "Tue, 15 Jul 2025 10:00 IST", "2025-07-15 10:00 XYZT"):
        assert names_unknown_zone(text), text
    for text in ("Tue, 15 Jul 2025 10:00 GMT", "Tue, 15 Jul 2025 10:00 EDT", "15 July", "2025-07-15T10:00:00Z", ""):
        assert not names_unknown_zone(text), text
    read = datetime(2023, 7, 15, 10, 0, tzinfo=UTC)
    for text, flag in (("day 15 2023 XYZT", "zone"), ("day 15 2023 GMT", "")):
        raw = RawEntry(id="1", published=text, published_parsed=read)
        [entry] = normalize_feed(_feed(raw), feed_url="f", fetched_at=NOW).entries
        assert (entry.published, entry.date_flag) == (read, flag), text
