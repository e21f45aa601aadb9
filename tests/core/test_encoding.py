"""How a feed's bytes become text when nothing (no declaration, no header) says how they are encoded."""

from __future__ import annotations

from datetime import UTC, datetime

from aggregator.core.encoding import decode_feed
from aggregator.parsing.document import parse_document
from aggregator.parsing.normalize import normalize_feed


def undeclared(title: str, codec: str) -> bytes:
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>{title}</title></channel></rss>'.encode(codec)


def test_big5_and_gbk_without_a_declaration_are_told_apart() -> None:
    big5 = ["國家稅務總局發布便民辦稅春風行動", "總統府今日宣布", "香港特別行政區政府", "科技新報：蘋果發表新款手機"]
    gbk = ["国家税务总局发布便民办税春风行动", "留抵退税政策落地见效", "新闻", "中国", "北京", "人民日报"]
    for title in big5:
        text, used = decode_feed(undeclared(title, "cp950"))
        assert (title in text, used) == (True, "cp950"), (title, text, used)
    for title in gbk:
        text, used = decode_feed(undeclared(title, "gb18030"))
        assert (title in text, used) == (True, "gb18030"), (title, text, used)


def test_an_undeclared_big5_feed_is_archived_as_written() -> None:
    items = "".join(
        f"<item><title>{t}</title><link>https://tw.example/{n}</link><description>{t}。</description></item>"
        for n, t in enumerate(["臺北市長記者會", "中央社：颱風明日登陸", "經濟日報：股市收盤"])
    )
    body = f'<rss version="2.0"><channel><title>聯合新聞網</title>{items}</channel></rss>'.encode("cp950")
    for fast in (True, False):  # the lxml path and feedparser's read the same text
        raw = parse_document(body, "https://tw.example/rss", "application/rss+xml", fast=fast)
        feed = normalize_feed(raw, feed_url="https://tw.example/rss", fetched_at=datetime.now(UTC))
        assert feed.title == "聯合新聞網"
        assert [entry.title for entry in feed.entries] == [
            "臺北市長記者會",
            "中央社：颱風明日登陸",
            "經濟日報：股市收盤",
        ]


def test_what_the_document_or_server_declares_still_wins() -> None:
    title = "臺灣新聞"
    assert decode_feed(undeclared(title, "cp950"), "text/xml; charset=gbk")[1] == "gb18030"
    assert decode_feed(undeclared("中文", "utf-8"))[1] == "utf-8"


def test_a_utf8_document_with_a_few_bad_sequences_keeps_all_its_valid_text() -> None:
    titles = ["国家税务总局发布便民办税春风行动", "长沙税务部门", "减税降费 纳税服务"]
    items = "".join(f"<item><title>{t}</title><link>https://cn.example/{n}</link></item>" for n, t in enumerate(titles))
    good = f'<rss version="2.0"><channel><title>人民日报</title>{items}</channel></rss>'.encode()
    # A character cut short (what a template that cuts titles by bytes writes): the document then also
    # decodes "strictly" as GB18030, all of it into nonsense, where only that character is lost.
    body = good.replace("人民日报".encode(), "人民日报".encode()[:-2], 1)
    for content_type in (None, "text/xml; charset=utf-8", "text/xml; charset=gbk"):
        text, used = decode_feed(body, content_type)
        assert used == "utf-8", content_type
        assert "<title>人民日\ufffd</title>" in text and all(t in text for t in titles)
    for fast in (True, False):  # the lxml path and feedparser's read the same text
        raw = parse_document(body, "https://cn.example/rss", "application/rss+xml", fast=fast)
        feed = normalize_feed(raw, feed_url="https://cn.example/rss", fetched_at=datetime.now(UTC))
        assert feed.title == "人民日\ufffd"
        assert [entry.title for entry in feed.entries] == titles
    # A mostly English one with a stray Latin-1 byte keeps its UTF-8 text, not read as windows-1252 ("cafÃ©").
    english = "<rss><title>café — crème brûlée, naïve</title><description>Ã la carte \x00</description></rss>"
    body = english.encode().replace(b"\x00", b"d\xe9j\xe0 vu")
    assert decode_feed(body) == (english.replace("\x00", "d\ufffdj\ufffd vu"), "utf-8")


def test_legacy_documents_are_not_taken_for_utf8_with_bad_sequences() -> None:
    """Text in another encoding reads as UTF-8 with most of its non-ASCII characters invalid, however few
    of them happen to form UTF-8: it is still read in its own encoding, whether declared or not."""
    from importlib import resources

    gbk = resources.files("aggregator.samples").joinpath("zhongguoshuiwubao-gbk.xml").read_bytes()
    assert decode_feed(gbk)[1] == "gb18030" and "中国税务报" in decode_feed(gbk)[0]
    samples = {
        "gb18030": "国家税务总局发布便民办税春风行动，留抵退税政策落地见效",
        "cp950": "國家稅務總局發布便民辦稅春風行動，總統府今日宣布",
        "shift_jis": "東京都は本日、新しい政策を発表しました。",
        "euc_kr": "서울특별시는 오늘 새로운 정책을 발표했습니다.",
        "cp1252": "Café crème brûlée — “quoted” naïve façade",
    }
    for codec, title in samples.items():
        text, used = decode_feed(undeclared(title, codec), f"text/xml; charset={codec}")
        assert (title in text, used) == (True, codec), (codec, text, used)
    for codec in ("gb18030", "cp950"):
        text, used = decode_feed(undeclared(samples[codec], codec))
        assert (samples[codec] in text, used) == (True, codec), (codec, text, used)
