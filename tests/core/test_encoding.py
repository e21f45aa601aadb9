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
