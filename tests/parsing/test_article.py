"""Full-article extraction (aggregator.parsing.article): decoding, extraction paths, hostile pages, teasers.

Pages are built here, in the encodings and with the (lying) declarations real sites serve; nothing is fetched.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
from collections import Counter

import pytest

from aggregator.parsing.article import (
    ExtractedArticle,
    ExtractionError,
    decode_html,
    extract_article,
    looks_truncated,
    meta_charset,
)
from tests.conftest import REPO, SHARED

URL = "https://news.example.com/finance/2024/05/article-1.html"

ZH_PARAGRAPHS = [
    "国家税务总局近日发布公告，2023年度个人所得税综合所得汇算清缴将于2024年3月1日开始，6月30日结束。"
    "为避免办税高峰期集中拥堵，3月1日至3月20日期间，纳税人需要通过个人所得税App提前预约后方可办理。",
    "税务部门提醒，纳税人在2023年已依法预缴个人所得税且综合所得收入全年不超过12万元的，无需办理年度汇算。"
    "今年是提高三项专项附加扣除标准后的首个汇算年度，赡养老人专项附加扣除标准由每月2000元提高到3000元。",
    "市税务局纳税服务科负责人介绍，今年个人所得税App进一步优化了预填服务，纳税人可以直接确认系统预填的收入和扣除信息。"
    "对于年长、行动不便等特殊人群，税务部门将提供上门辅导或者远程代办服务，纳税人也可拨打12366热线咨询。",
]
# Traditional characters, all in Big5: what a Taiwanese site writes.
TW_PARAGRAPHS = [
    "綜合所得稅結算申報將於5月1日開始，5月31日截止。財政部表示，今年申報適用的免稅額、標準扣除額及薪資所得特別扣除額均已調高，"
    "單身且僅有薪資所得者，年收入在44.6萬元以下可免繳稅。",
    "民眾今年可透過手機報稅、網路申報或臨櫃申報等方式辦理。財政部提醒，使用自然人憑證或已註冊的健保卡，均可下載所得及扣除額資料，"
    "符合條件的納稅人也可以使用稅額試算服務，確認內容無誤後即可完成申報。",
    "國稅局官員表示，申報期間最後一週往往是報稅高峰，建議民眾盡早申報，以免網路壅塞。應退稅款預計自7月起陸續撥入納稅人指定帳戶，"
    "應補稅款則須在申報期限內繳納，逾期將加徵滯納金。",
]
EN_PARAGRAPHS = [
    "The tax office said on Tuesday that the annual filing season would open on the first of March, two weeks "
    "earlier than last year, and that most employees would find their income already filled in.",
    "Officials expect about eleven million returns this year. Refunds, which averaged a little over three hundred "
    "pounds last year, should arrive within a week for returns filed online without corrections.",
    "Accountants welcomed the earlier start but warned that the new allowance for childcare costs had not yet "
    "been added to the online form, and advised parents who claim it to wait until the end of the month.",
]


def news_page(paragraphs: list[str], *, meta: str = "", extra: str = "", title: str = "", lang: str = "zh") -> str:
    """An article page with the frame real news sites put around an article."""
    nav, related = {
        "zh": (
            "首页 新闻 财经 科技 汽车 房产",
            ["多地公积金贷款政策优化", "前10个月全国网上零售额同比增长", "多家银行下调大额存单利率"],
        ),
        "tw": ("首頁 新聞 財經 科技 房市", ["基本工資明年調升", "台積電第三季營收創新高", "勞保年金改革方案出爐"]),
        "en": (
            "Home News Business Technology Sport",
            ["Pension changes explained", "Inflation falls", "The budget and you"],
        ),
    }[lang]
    title = title or {"zh": "个税汇算今起预约", "tw": "綜所稅申報開跑", "en": "Filing season"}[lang]
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    links = "".join(f'<li><a href="/news/{i}.html">{h}</a></li>' for i, h in enumerate(related))
    return f"""<!DOCTYPE html><html><head>{meta}<title>{title}</title>
<script>var conf = {{"channel": "finance"}};</script><style>p {{ line-height: 1.8 }}</style></head>
<body><div class="nav">{"".join(f'<a href="/{n}/">{n}</a> ' for n in nav.split())}</div>
<div class="main"><h1>{title}</h1><div class="article-content">{body}{extra}</div>
<div class="related"><ul>{links}</ul></div></div>
<div class="footer">Copyright 2024 {"京ICP备10023456号" if lang == "zh" else "All rights reserved"}</div>
</body></html>"""


def plain(article: ExtractedArticle) -> str:
    from aggregator.core.sanitize import html_to_text

    return html_to_text(article.html)


# ---------------------------------------------------------------------------------------------------------
# Decoding


def test_meta_charset_reads_both_forms() -> None:
    assert meta_charset(b'<head><meta charset="gbk"></head>') == "gbk"
    assert meta_charset(b"<head><META CHARSET=Big5>") == "Big5"
    assert meta_charset(b'<meta http-equiv="Content-Type" content="text/html; charset=gb2312" />') == "gb2312"
    assert meta_charset(b"<head><title>none</title></head>") is None


def test_gbk_page_with_the_charset_in_the_header_only() -> None:
    body = news_page(ZH_PARAGRAPHS).encode("gbk")
    text, codec = decode_html(body, "text/html; charset=GBK")
    assert codec == "gb18030"
    assert ZH_PARAGRAPHS[0] in text
    article = extract_article(body, URL, "text/html; charset=GBK")
    assert article.encoding == "gb18030"
    assert all(p[:30] in plain(article) for p in ZH_PARAGRAPHS)


def test_big5_page_with_the_charset_in_meta_only() -> None:
    body = news_page(TW_PARAGRAPHS, lang="tw", meta='<meta charset="big5">').encode("cp950")
    article = extract_article(body, URL, "text/html")
    assert article.encoding == "cp950"
    assert all(p[:30] in plain(article) for p in TW_PARAGRAPHS)


def test_big5_page_that_declares_nothing() -> None:
    # GB18030 reads nearly any Big5 text without an error, as nonsense: the Big5 guess must win.
    body = news_page(TW_PARAGRAPHS, lang="tw").encode("cp950")
    article = extract_article(body, URL, None)
    assert article.encoding == "cp950"
    assert TW_PARAGRAPHS[1][:30] in plain(article)


def test_utf8_page_without_header_or_meta() -> None:
    body = news_page(ZH_PARAGRAPHS).encode("utf-8")
    article = extract_article(body, URL, None)
    assert article.encoding == "utf-8"
    assert ZH_PARAGRAPHS[2][:30] in plain(article)


def test_header_saying_utf8_on_a_gbk_page_loses_to_its_meta() -> None:
    body = news_page(ZH_PARAGRAPHS, meta='<meta http-equiv="Content-Type" content="text/html; charset=gbk">').encode(
        "gbk"
    )
    article = extract_article(body, URL, "text/html; charset=utf-8")
    assert article.encoding == "gb18030"
    assert ZH_PARAGRAPHS[0][:30] in plain(article)


def test_server_default_latin1_header_loses_to_the_pages_gb2312_meta() -> None:
    # A legacy charset that reads any byte: a strict trial cannot reject it, so it goes last.
    body = news_page(ZH_PARAGRAPHS, meta='<meta charset="gb2312">').encode("gbk")
    text, codec = decode_html(body, "text/html; charset=ISO-8859-1")
    assert codec == "gb18030"
    assert ZH_PARAGRAPHS[1] in text


def test_big5_page_behind_a_gb2312_header() -> None:
    body = news_page(TW_PARAGRAPHS, lang="tw", meta='<meta charset="big5">').encode("cp950")
    text, codec = decode_html(body, "text/html; charset=gb2312")
    assert codec == "cp950"
    assert TW_PARAGRAPHS[0] in text


def test_utf8_page_that_still_declares_gbk() -> None:
    # A site moved to UTF-8 with its old templates: valid UTF-8 is UTF-8, whatever the declarations say.
    body = news_page(ZH_PARAGRAPHS, meta='<meta charset="gb2312">').encode("utf-8")
    text, codec = decode_html(body, "text/html; charset=gbk")
    assert codec == "utf-8"
    assert ZH_PARAGRAPHS[0] in text


def test_gbk_only_characters_in_a_gb2312_page_survive() -> None:
    # 镕 and 喆 are GBK, not GB2312: sites that say gb2312 write GBK.
    paragraphs = [ZH_PARAGRAPHS[0] + "记者朱镕、王喆报道。", *ZH_PARAGRAPHS[1:]]
    body = news_page(paragraphs, meta='<meta charset="gb2312">').encode("gbk")
    assert "记者朱镕、王喆报道" in plain(extract_article(body, URL, "text/html"))


def test_a_meta_naming_utf16_in_an_ascii_readable_page_is_ignored() -> None:
    body = news_page(ZH_PARAGRAPHS, meta='<meta charset="utf-16">').encode("utf-8")
    assert decode_html(body, None) == (body.decode("utf-8"), "utf-8")


# Generated by benchmarks/make_article_zh.py and kept in the repository, so present in any clone.
ZH_CORPUS = REPO / "benchmarks" / "data" / "article-zh"


@pytest.mark.skipif(
    not (ZH_CORPUS / "ground-truth.json").exists(), reason=f"Chinese article corpus not found at {ZH_CORPUS}"
)
def test_every_page_of_the_chinese_corpus_decodes_right() -> None:
    truth = json.loads((ZH_CORPUS / "ground-truth.json").read_text(encoding="utf-8"))
    for key, item in truth.items():
        text, _ = decode_html((ZH_CORPUS / item["file"]).read_bytes(), item["content_type"])
        assert item["title"] in text, f"{key} ({item['encoding']}, {item['declared']}) decoded wrong"


# ---------------------------------------------------------------------------------------------------------
# Extraction paths


def test_automatic_extraction_keeps_structure_and_drops_the_frame() -> None:
    extra = (
        "<h2>办理方式</h2><ul><li>通过个人所得税App办理；</li><li>到办税服务厅办理。</li></ul>"
        "<table><tr><th>项目</th><th>标准</th></tr><tr><td>子女教育</td><td>每月2000元</td></tr></table>"
        "<p>市税务局提醒，纳税人应当如实填报收入和扣除信息，对于虚假填报专项附加扣除骗取退税的行为，"
        "税务部门将依法追缴税款并加收滞纳金，情节严重的还将依法处罚。</p>"
    )
    article = extract_article(news_page(ZH_PARAGRAPHS, extra=extra).encode("utf-8"), URL, "text/html; charset=utf-8")
    assert "<h2>" in article.html and "<table>" in article.html
    assert "依法追缴税款" in article.html
    text = plain(article)
    assert "京ICP备" not in text and "多地公积金贷款政策优化" not in text
    assert article.extractor.startswith(("trafilatura ", "readability-lxml "))
    assert article.text_length == len(text)


def test_layout_tables_become_divs_and_data_tables_stay() -> None:
    # A government site of the 2000s: the page is a table, the article one of its cells.
    data = "<table><tr><th>项目</th><th>标准</th></tr><tr><td>子女教育</td><td>每月2000元</td></tr></table>"
    cell = "".join(f"<p>{p}</p>" for p in ZH_PARAGRAPHS) + data
    page = f"""<html><head><meta charset="gbk"><title>个税汇算今起预约</title></head><body>
<table width="1000"><tr><td><a href="/">首页</a> | <a href="/news/">新闻动态</a> |
<a href="/zwgk/">政务公开</a></td></tr></table>
<table width="1000"><tr><td width="20"></td><td><table width="100%">
<tr><td align="center"><font size="5"><b>个税汇算今起预约</b></font></td></tr>
<tr><td>发布日期：2024-02-21 来源：市税务局 浏览次数：1024</td></tr>
<tr><td id="zoom">{cell}</td></tr>
<tr><td>【<a href="javascript:window.print()">打印本页</a>】
【<a href="javascript:window.close()">关闭窗口</a>】</td></tr>
</table></td></tr></table>
<table width="1000"><tr><td>主办单位：国家税务总局江东市税务局
网站标识码：3301000012 浙ICP备05012345号</td></tr></table>
</body></html>"""
    article = extract_article(page.encode("gbk"), URL, "text/html")
    assert article.html.count("<table>") == 1 and "<th>项目</th>" in article.html
    text = plain(article)
    assert all(p[:20] in text for p in ZH_PARAGRAPHS)
    for frame in ("发布日期", "打印本页", "主办单位", "首页"):
        assert frame not in text


@pytest.mark.parametrize("paragraph", ["<p>{}</p>", "{}<br><br>"])
def test_lists_survive_in_a_container_trafilatura_does_not_know(paragraph: str) -> None:
    # trafilatura gathers loose paragraphs where its vocabulary finds no container ("zoom", "zw") and drops the
    # article's lists on the way; the module names the container for it.
    body = "".join(paragraph.format(p) for p in ZH_PARAGRAPHS[:2])
    body += (
        "<ol><li>通过个人所得税App预约办理；</li><li>到办税服务厅现场办理；</li><li>委托扣缴单位代为办理。</li></ol>"
    )
    body += paragraph.format(ZH_PARAGRAPHS[2])
    page = f"""<html><head><meta charset="utf-8"><title>个税汇算今起预约</title></head><body>
<div class="nav"><a href="/">首页</a> <a href="/news/">新闻动态</a> <a href="/zwgk/">政务公开</a></div>
<div id="zoom" class="zw">{body}</div><div class="foot">主办单位：国家税务总局江东市税务局</div></body></html>"""
    article = extract_article(page.encode(), URL, "text/html")
    assert article.html.count("<li>") == 3
    assert all(p[:20] in plain(article) for p in ZH_PARAGRAPHS)


def test_the_pages_own_title_is_not_repeated_in_the_article() -> None:
    article = extract_article(news_page(EN_PARAGRAPHS, title="Filing season opens early", lang="en").encode(), URL)
    assert "Filing season opens early" not in plain(article)
    assert EN_PARAGRAPHS[0][:40] in plain(article)


def test_content_selector_is_used_instead_of_automatic_extraction() -> None:
    chosen = (
        "只要这一段：这是网站运营者为这个订阅源指定的正文区域，"
        "自动提取在这个网站上会选错内容，所以由选择器决定正文。选择器之外的段落都不要。"
    )
    page = news_page(ZH_PARAGRAPHS, extra=f'<div id="box"><p>{chosen}</p></div>')
    article = extract_article(page.encode(), URL, content_selector="#box")
    assert article.extractor == "selector"
    assert plain(article) == chosen


def test_remove_selectors_apply_before_the_selector_and_before_automatic_extraction() -> None:
    extra = '<div class="ad">【广告】点击领取新人红包，限时优惠不容错过</div><p class="editor">责任人：张三</p>'
    page = news_page(ZH_PARAGRAPHS, extra=extra).encode()
    automatic = extract_article(page, URL, remove_selectors=[".ad"])
    assert "广告" not in plain(automatic) and ZH_PARAGRAPHS[0][:20] in plain(automatic)
    selected = extract_article(page, URL, content_selector=".article-content", remove_selectors=[".ad", "p.editor"])
    assert "广告" not in plain(selected) and "张三" not in plain(selected)
    assert ZH_PARAGRAPHS[2][:20] in plain(selected)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"content_selector": "#nowhere"}, "content_selector '#nowhere' matched nothing"),
        ({"content_selector": "div[[["}, "invalid content_selector 'div[[['"),
        ({"remove_selectors": ["p", "::oops("]}, "invalid remove_selector '::oops('"),
        ({"content_selector": ".footer"}, "content_selector '.footer' matched"),
    ],
)
def test_selector_problems_are_one_line_reasons(kwargs: dict[str, object], reason: str) -> None:
    with pytest.raises(ExtractionError) as failure:
        extract_article(news_page(ZH_PARAGRAPHS).encode(), URL, **kwargs)  # type: ignore[arg-type]
    assert str(failure.value).startswith(reason)
    assert "\n" not in str(failure.value)


def test_relative_urls_are_resolved_against_the_final_url() -> None:
    extra = (
        '<p><img src="/img/chart.png" alt="图表"> <img src="photo.jpg"> <a href="../2023/older.html">去年的报道</a>'
        ' <a href="javascript:alert(1)">坏链接</a> <a href="//cdn.example.net/f.pdf">附件</a></p>'
    )
    article = extract_article(news_page(ZH_PARAGRAPHS, extra=extra).encode(), URL, content_selector=".article-content")
    assert 'src="https://news.example.com/img/chart.png"' in article.html
    assert 'src="https://news.example.com/finance/2024/05/photo.jpg"' in article.html
    assert 'href="https://news.example.com/finance/2024/2023/older.html"' in article.html
    assert 'href="https://cdn.example.net/f.pdf"' in article.html
    assert "javascript" not in article.html


def test_relative_urls_follow_the_pages_base_href() -> None:
    page = news_page(ZH_PARAGRAPHS, meta='<base href="/static/">', extra='<p><img src="a.png"></p>').encode()
    article = extract_article(page, URL, content_selector=".article-content")
    assert 'src="https://news.example.com/static/a.png"' in article.html


def test_automatic_output_is_sanitised_and_absolute() -> None:
    extra = (
        '<p onclick="steal()">更多信息请见<a href="/notice/12366.html">公告原文</a>，图表见下。'
        '<img src="/img/t.png"></p><script>evil()</script>'
    )
    article = extract_article(news_page(ZH_PARAGRAPHS, extra=extra).encode(), URL)
    assert "onclick" not in article.html and "evil" not in article.html
    assert 'href="https://news.example.com/notice/12366.html"' in article.html


def test_threads_extract_side_by_side() -> None:
    from concurrent.futures import ThreadPoolExecutor

    pages = [news_page(ZH_PARAGRAPHS[i:] + ZH_PARAGRAPHS[:i]).encode("gbk") for i in range(3)] * 4
    alone = [extract_article(page, URL, "text/html; charset=gbk").html for page in pages]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda page: extract_article(page, URL, "text/html; charset=gbk").html, pages))
    assert together == alone


def test_the_error_is_one_of_the_projects() -> None:
    from aggregator.core.errors import AggregatorError

    assert issubclass(ExtractionError, AggregatorError)


def test_result_is_frozen() -> None:
    article = extract_article(news_page(ZH_PARAGRAPHS).encode(), URL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        article.html = ""  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------------------
# Hostile pages: a reason, never a traceback


def test_script_only_page() -> None:
    page = b"""<!DOCTYPE html><html><head><title>App</title><script src="/app.js"></script></head>
<body><div id="root"></div>
<script>window.__STATE__ = {"article": "loading"}; render(document.getElementById("root"));</script>
<noscript>You need to enable JavaScript to run this app.</noscript></body></html>"""
    with pytest.raises(ExtractionError, match="no text without JavaScript"):
        extract_article(page, URL, "text/html")


def test_login_wall() -> None:
    page = """<html><head><meta charset="utf-8"><title>会员登录</title></head><body>
<div class="nav"><a href="/">首页</a></div><h1>本文为会员专享内容</h1><p>登录后查看全文。</p>
<form action="/login" method="post"><input name="user"><input type="password" name="pw"><button>登录</button></form>
</body></html>""".encode()
    with pytest.raises(ExtractionError, match="login or paywall"):
        extract_article(page, URL, "text/html; charset=utf-8")


def test_english_subscribe_wall_without_a_form() -> None:
    page = b"""<html><body><h1>Budget: what it means</h1><p>Subscribe to continue reading.</p>
<a href="/subscribe">Subscribe now</a> <a href="/login">Sign in</a></body></html>"""
    with pytest.raises(ExtractionError, match="login or paywall"):
        extract_article(page, URL, "text/html")


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (
            b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj",
            "application/pdf",
            "not an HTML page: a PDF document (application/pdf)",
        ),
        (b"%PDF-1.4\n", "text/html", "not an HTML page: a PDF document (text/html)"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png", "not an HTML page: a PNG image (image/png)"),
        (b'{"error": "not found"}', "application/json", "not an HTML page: JSON (application/json)"),
        (b"plain words, no markup at all", "text/plain", "not an HTML page (text/plain)"),
        (b"", "text/html", "empty page"),
        (b"   \n ", None, "empty page"),
    ],
)
def test_non_html(body: bytes, content_type: str | None, reason: str) -> None:
    with pytest.raises(ExtractionError) as failure:
        extract_article(body, URL, content_type)
    assert str(failure.value) == reason


def test_html_served_with_a_wrong_type_is_still_read() -> None:
    article = extract_article(news_page(ZH_PARAGRAPHS).encode(), URL, "application/octet-stream")
    assert ZH_PARAGRAPHS[0][:20] in plain(article)


def test_tiny_page_without_scripts() -> None:
    with pytest.raises(ExtractionError, match="no text: "):
        extract_article(b"<html><body><p>Not found</p></body></html>", URL, "text/html")


def test_garbage_never_raises_anything_else() -> None:
    for body in (
        b"<",
        b"<html",
        b"<html><body>" + b"<div>" * 5000,
        b"<p>\x00\x01\x02</p>",
        "<p>\ud800</p>".encode("utf-8", "surrogatepass"),
    ):
        try:
            extract_article(body, URL, "text/html")
        except ExtractionError as failure:
            assert "\n" not in str(failure)


# ---------------------------------------------------------------------------------------------------------
# Does the feed's own text look cut?

FULL_ZH = "".join(f"<p>{p}</p>" for p in ZH_PARAGRAPHS * 2)
FULL_EN = "".join(f"<p>{p}</p>" for p in EN_PARAGRAPHS * 2)


@pytest.mark.parametrize(
    "feed_html",
    [
        "",
        "<p>国家税务总局近日发布公告，2023年度个人所得税综合所得汇算清缴将于3月1日开始。</p>",  # short
        FULL_ZH[:400] + "……</p>",
        FULL_ZH[:600] + '</p><p><a href="https://example.com/a.html">阅读全文</a></p>',
        FULL_ZH[:600] + "</p><p>查看全文&gt;&gt;</p>",
        FULL_ZH[:600] + '</p><p><a href="/a.html">更多</a></p>',
        FULL_ZH[:700] + "</p><p>（未完待续）</p>",
        "<p>The tax office said the filing season would open early this year.</p>",  # short
        FULL_EN[:700]
        + " [&#8230;]</p><p>The post <a href='/x'>Filing opens</a> appeared first on <a href='/'>Tax News</a>.</p>",
        FULL_EN[:700] + ' <a href="/x">Read more &raquo;</a></p>',
        FULL_EN[:700] + "...</p>",
        FULL_EN[:700] + '</p><p><a class="more-link" href="/x">Continue reading <span>&rarr;</span></a></p>',
        FULL_EN[:700] + ' <a href="/x">more</a></p>',
        FULL_EN[:800] + " and the minister said that the",  # stops mid-sentence
    ],
)
def test_looks_truncated(feed_html: str) -> None:
    assert looks_truncated(feed_html)


@pytest.mark.parametrize(
    "feed_html",
    [
        FULL_ZH,
        FULL_EN,
        FULL_EN + "<p>Parents who claim the allowance should do more.</p>",  # "more" ends a sentence, not a link
        FULL_ZH + "<p>（完）</p>",
        FULL_EN * 2 + "<p>Reporting by Jane Doe; editing by John Smith</p>",  # long: a byline may lack a full stop
        FULL_ZH + '<p><img src="/chart.png"></p>',
    ],
)
def test_does_not_look_truncated(feed_html: str) -> None:
    assert not looks_truncated(feed_html)


# ---------------------------------------------------------------------------------------------------------
# Quality floors, so that an upgrade of trafilatura or readability that loses articles fails here rather than
# in the archive (benchmarks/extraction_eval.py measures the figures; these floors sit well below them).


def _bigram_f1(truth: str, got: str) -> float:
    def grams(text: str) -> Counter[str]:
        letters = "".join(re.findall(r"\w", text)).replace("_", "")
        return Counter(letters[i : i + 2] for i in range(len(letters) - 1))

    expected, found = grams(truth), grams(got)
    common = sum((expected & found).values())
    if not common:
        return 0.0
    precision, recall = common / sum(found.values()), common / sum(expected.values())
    return 2 * precision * recall / (precision + recall)


@pytest.mark.skipif(
    not (ZH_CORPUS / "ground-truth.json").exists(), reason=f"Chinese article corpus not found at {ZH_CORPUS}"
)
def test_chinese_corpus_quality_floor() -> None:
    truth = json.loads((ZH_CORPUS / "ground-truth.json").read_text(encoding="utf-8"))
    scores = {}
    for key, item in truth.items():
        article = extract_article((ZH_CORPUS / item["file"]).read_bytes(), item["url"], item["content_type"])
        scores[key] = _bigram_f1(item["articleBody"], plain(article))
    assert sum(scores.values()) / len(scores) >= 0.95, scores
    assert min(scores.values()) >= 0.8, scores


# The English article-extraction benchmark, read in place from ../shared (never copied into the repository).
ENGLISH = SHARED / "corpus" / "article-extraction"


@pytest.mark.skipif(
    not (ENGLISH / "ground-truth.json").exists(), reason=f"English article-extraction corpus not found at {ENGLISH}"
)
def test_english_corpus_quality_floor() -> None:
    truth = json.loads((ENGLISH / "ground-truth.json").read_text(encoding="utf-8"))
    scores = []
    for path in sorted((ENGLISH / "html").glob("*.html.gz"))[:40]:  # a fixed fifth of the pages: seconds, not a minute
        key = path.name.split(".")[0]
        try:
            got = plain(extract_article(gzip.decompress(path.read_bytes()), truth[key]["url"], "text/html"))
        except ExtractionError:
            got = ""
        scores.append(_bigram_f1(truth[key]["articleBody"], got))
    assert sum(scores) / len(scores) >= 0.9


def test_short_means_200_chinese_characters_or_500_latin_ones() -> None:
    zh = "".join(ZH_PARAGRAPHS)  # sentences ending in 。
    assert looks_truncated(f"<p>{zh[: zh.index('。', 150) + 1]}</p>")  # 158 characters
    assert not looks_truncated(f"<p>{zh[: zh.index('。', 220) + 1]}</p>")  # 269
    en = " ".join(EN_PARAGRAPHS * 2)  # three sentences of about 200 characters, twice
    assert looks_truncated(f"<p>{en[: en.index('.', 300) + 1]}</p>")  # about 390 characters
    assert not looks_truncated(f"<p>{en[: en.index('.', 560) + 1]}</p>")  # about 600
