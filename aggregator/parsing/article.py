"""The main text of a fetched web page, as safe HTML: the extraction half of full-article capture. Pure: no HTTP,
no SQLite.

A page is decoded with the project's own encoding rules plus its <meta> charset, parsed once with lxml, trimmed by
the feed's `remove_selectors` (all in aggregator.parsing.article_page), then its article is taken by the feed's
`content_selector` when there is one, else by trafilatura. trafilatura's vocabulary of class and id names is that of
English sites, and Chinese layouts defeat it (table layouts, containers named "zoom" or "artibody", WeChat's hidden
article), so the page is prepared first (article_page again): inline styles out, layout tables made divs, the
paragraphs' container named as trafilatura knows one. readability-lxml is asked where trafilatura finds too little,
and on CJK pages for a second opinion on where the article is. The article's own title and the framing lines at its
ends (editor, source, disclaimer, share prompts, CMS footers) are dropped, and the result goes through the project's
sanitiser, which also makes links absolute. What can go wrong with a hostile or odd page comes back as
ExtractionError with a one-line reason.

Choices below were measured with benchmarks/extraction_eval.py (English and Chinese corpora), whose docstring
has the figures.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Literal

import lxml.etree
import lxml.html
import trafilatura
from readability import Document

from aggregator.core.sanitize import html_to_text, sanitize_html
from aggregator.parsing.article_page import (
    ExtractionError,
    base_url,
    captions_to_paragraphs,
    decode_html,
    mark_container,
    meta_charset,
    not_html,
    parse_page,
    remove_selected,
    select_css,
    unstyle,
    unwrap_layout_tables,
)

__all__ = [
    "ExtractedArticle",
    "ExtractionError",
    "ExtractionSettings",
    "decode_html",
    "extract_article",
    "looks_truncated",
    "meta_charset",
]


@dataclass(frozen=True)
class ExtractedArticle:
    html: str  # sanitised, every URL absolute
    text_length: int  # characters of its plain text (aggregator.core.sanitize.html_to_text)
    # What made it: "trafilatura 2.3.1", "readability-lxml 0.9", "trafilatura 2.3.1+readability-lxml 0.9" (the
    # first's lines cut to those the second confirms) or "selector".
    extractor: str
    encoding: str  # the codec the page was read with


@dataclass(frozen=True)
class ExtractionSettings:
    """How trafilatura is called and when readability is asked instead. The defaults are the measured choice;
    the other values exist so that benchmarks/extraction_eval.py can measure them again."""

    # trafilatura's own balance. favor_precision measured better before the page preparation below and with
    # trafilatura's internal fallbacks; with both as chosen, the balanced default keeps more of each article.
    favor_precision: bool = False
    favor_recall: bool = False
    # trafilatura without its internal fallbacks (copies of readability and justext): a third less time, and on
    # pages prepared as below they add nothing measurable.
    fast: bool = True
    include_tables: bool = True
    include_images: bool = True
    include_links: bool = True
    # "never": trafilatura only. "empty": readability when trafilatura returns nothing. "short": also when its
    # text weighs less than fallback_below. "longer": run both, keep the one with more text. "second-opinion":
    # "short", and on CJK pages readability's text cuts trafilatura's to the article (see _automatic).
    # "always": that second opinion on every page (English: F1 0.971 against 0.965, for 2.7 times the CPU).
    fallback: Literal["never", "empty", "short", "longer", "second-opinion", "always"] = "second-opinion"
    fallback_below: int = 250  # text weight (see _weight), measured
    # Where readability's text holds this share of trafilatura's (cut to the lines readability confirms) and
    # trafilatura's does not hold as much of readability's, readability found more of the article: its output wins.
    superset_share: float = 0.8
    # Captions inside <figure> are article text, but trafilatura keeps only the <img> alt: move them to a <p>.
    captions_as_paragraphs: bool = True
    unstyle: bool = True  # inline styles out before extraction (see article_page)
    unwrap_layout_tables: bool = True  # layout tables made divs before extraction (see article_page)
    mark_container: bool = True  # the paragraphs' container named for trafilatura (see article_page)
    tidy: bool = True  # drop the article's title and framing lines (bylines, disclaimers) at its ends


DEFAULT_SETTINGS = ExtractionSettings()
# Less text than this (about 50 Chinese characters or 150 Latin ones) is no article: a login wall, an error
# page, a page drawn by scripts.
MIN_WEIGHT = 150
# A text whose letters are more than this share CJK is a CJK text.
CJK_PAGE = 0.3
# readability's text must be found, this much of it, in trafilatura's lines for them to be cut to it.
CONFIRMED_SHARE = 0.6

# ---------------------------------------------------------------------------------------------------------
# Extraction

# Ideographs (with extensions and compatibility forms), kana, Hangul: scripts without spaces, where a character
# carries about what 2.5 Latin letters do (a Chinese article runs at 40% of its English translation's length).
_CJK = re.compile(
    "[\u2e80-\u2fdf\u3040-\u30ff\u3100-\u312f\u3190-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f]"
)
_SPACE = re.compile(r"\s+")


def _weight(text: str) -> float:
    """Length of text in Latin-letter equivalents: spaces not counted, a CJK character as 2.5."""
    dense = _SPACE.sub("", text)
    cjk = len(_CJK.findall(dense)) if not dense.isascii() else 0
    return len(dense) + 1.5 * cjk


@cache
def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:  # a source checkout without metadata: the name still says which path ran
        return "?"


# Lines that frame an article rather than belong to it, found first or last in what extractors keep: bylines
# and credits, editor and source notes, disclaimers, share and follow prompts. Only a run of such lines at either
# end is dropped, never one in the middle of the text.
_FRAME = re.compile(
    r"^[\s(（【\[]*(?:责任编辑|责编|编辑|文章来源|本文来源|稿件来源|来源|原标题|作者|校对|审核|监制|图片来源|"
    r"責任編輯|編輯|資料來源|來源|原標題)\s*[:：]"
    r"|郑重声明|免责声明|版权声明|特别声明|免責聲明|版權聲明|风险提示[:：]|"
    r"未经(?:书面)?(?:许可|授权).{0,20}(?:转载|使用|复制)|未經(?:書面)?(?:許可|授權).{0,20}(?:轉載|使用|複製)|"
    r"本文(?:仅|僅)?代表作者(?:个人|個人)?(?:观点|觀點)|"
    r"^[-—\s(（]*(?:END|完|全文完)[-—\s)）]*$|"
    r"长按(?:识别)?二维码|扫码(?:下载|关注|阅读)|微信扫一扫|扫一扫|关注(?:我们|公众号|该公众号)|点击(?:上方|下方|蓝字)|"
    r"長按(?:識別)?二維碼|掃碼|分享到[:：]?|^分享$|^摘要|"
    # the frame of Chinese government and CMS pages: date and hit-count line, font-size and print links, footer
    r"(?:发布|發布)(?:日期|时间|時間)[:：]|浏览次数|瀏覽次數|【?字[体體][:：]|打印本页|关闭窗口|"
    r"主办单位|承办单位|网站标识码|ICP[备证]|公网安备"
    r"|^(?:share(?: this)?|related(?: articles| stories)?|advertisement|follow us|sign up for|subscribe to)\b"
    r"|^(?:©|copyright\b)|all rights reserved",
    re.IGNORECASE,
)
_FRAME_MAX = 400  # characters: a longer block is text, whatever words it has
_BLOCKS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "dd", "dt", "td", "th", "caption", "div", "section", "article"}
    | {"main", "header", "footer", "aside", "nav", "blockquote", "pre", "table", "tbody", "thead", "tfoot", "tr"}
    | {"ul", "ol", "dl", "figure", "figcaption", "center", "form"}
)
_PUNCT = re.compile(r"[\W_]+")


def _titles(root: lxml.html.HtmlElement) -> tuple[set[str], str]:
    """(exact titles: <h1>s and og:title, the <title>), normalised: no spaces, no punctuation, lower case."""
    exact = {_PUNCT.sub("", " ".join(h.itertext())).lower() for h in root.iter("h1")}
    exact |= {_PUNCT.sub("", m.get("content", "")).lower() for m in root.xpath("//meta[@property='og:title']")}
    title = root.find(".//title")
    return exact - {""}, _PUNCT.sub("", title.text_content()).lower() if title is not None else ""


def _fragment(html: str) -> lxml.html.HtmlElement | None:
    try:
        return lxml.html.fragment_fromstring(html, create_parent="div")
    except (lxml.etree.ParserError, ValueError):
        return None


def _lines(container: lxml.html.HtmlElement) -> list[lxml.html.HtmlElement]:
    """An extraction's lines in order: blocks with text and no block inside, and images outside such blocks."""
    elements = [e for e in container.iter() if isinstance(e.tag, str)]
    holds: dict[lxml.html.HtmlElement, bool] = {}
    for element in reversed(elements):  # children before their parent
        holds[element] = any(
            child.tag in _BLOCKS or holds.get(child, False) for child in element if isinstance(child.tag, str)
        )
    lines: list[lxml.html.HtmlElement] = []
    inside: set[lxml.html.HtmlElement] = set()  # the lines and what they hold
    for element in elements[1:]:
        if element.getparent() in inside:
            inside.add(element)
        elif element.tag == "img" or (element.tag in _BLOCKS and not holds[element] and element.text_content().strip()):
            lines.append(element)
            inside.add(element)
    return lines


def _drop(lines: list[lxml.html.HtmlElement]) -> None:
    """Remove lines, then the containers (tables, lists, wrappers) they leave without text or images."""
    parents = set()
    for line in lines:
        parent = line.getparent()
        line.drop_tree()
        if parent is not None:
            parents.add(parent)
    while parents:
        element = parents.pop()
        parent = element.getparent()
        if (
            parent is not None
            and not element.text_content().strip()
            and element.find(".//img") is None
            and element.tag != "img"
        ):
            element.drop_tree()
            parents.add(parent)


def _is_frame(line: lxml.html.HtmlElement) -> bool:
    text = line.text_content().strip()
    return len(text) <= _FRAME_MAX and bool(_FRAME.search(text))


def _tidy(html: str, titles: tuple[set[str], str]) -> str:
    """The article without its own title at the start and without framing lines at either end (images next to a
    dropped line go with it: a QR code under "扫码关注")."""
    container = _fragment(html)
    if container is None:
        return html
    lines = _lines(container)
    exact, title = titles
    dropped: list[lxml.html.HtmlElement] = []
    for edge in (lines, lines[::-1]):
        pending = []
        for line in edge:
            if line.tag == "img":
                pending.append(line)
                continue
            key = _PUNCT.sub("", line.text_content()).lower()
            is_title = (
                edge is lines
                and bool(key)
                and (key in exact or key == title or (len(key) >= 4 and line.tag[0] == "h" and title.startswith(key)))
            )
            if line in dropped or not (is_title or _is_frame(line)):
                break
            dropped += [*pending, line]
            pending = []
    if not dropped:
        return html
    _drop(dropped)
    for element in reversed(list(container.iter())):  # what is left empty: spacer cells, wrappers
        empty = not element.text_content().strip() and element.find(".//img") is None
        if empty and element is not container and element.tag not in ("img", "br", "hr"):
            element.drop_tree()
    return lxml.html.tostring(container, encoding="unicode")


def _confirmed(html: str, reference: str) -> str:
    """trafilatura's html cut to the stretch of lines that another extractor's text confirms: what it kept before
    the first confirmed line and after the last is the page's frame (layout tables, comments, sidebars) that
    its English-site vocabulary did not recognise. Lines between confirmed ones stay, as readability drops short
    lists and tables inside articles. Unchanged where the two agree on too little to tell."""
    container = _fragment(html)
    reference = _SPACE.sub("", reference)
    if container is None or not reference:
        return html
    lines = _lines(container)
    found = []
    agreed = 0
    for index, line in enumerate(lines):
        text = _SPACE.sub("", line.text_content())
        if len(text) >= 2 and text in reference:
            found.append(index)
            agreed += len(text)
    if not found or agreed < CONFIRMED_SHARE * len(reference):
        return html
    outside = lines[: found[0]] + lines[found[-1] + 1 :]
    if not outside:
        return html
    _drop(outside)
    return lxml.html.tostring(container, encoding="unicode")


def _trafilatura(root: lxml.html.HtmlElement, url: str, settings: ExtractionSettings) -> str:
    html = trafilatura.extract(
        root,  # trafilatura works on a copy of a tree it is given
        url=url,
        output_format="html",
        include_comments=False,
        include_tables=settings.include_tables,
        include_images=settings.include_images,
        include_links=settings.include_links,
        favor_precision=settings.favor_precision,
        favor_recall=settings.favor_recall,
        fast=settings.fast,
    )
    return html or ""


def _readability(root: lxml.html.HtmlElement, url: str) -> str:
    # A copy, as readability edits the tree it is given (and takes one, sparing a second parse).
    try:
        return str(Document(copy.deepcopy(root), url=url).summary(html_partial=True))
    except Exception:  # readability raises its own Unparseable, lxml errors and ValueError on odd trees
        return ""


_WORDS = re.compile(r"\w+")


def _cjk_share(text: str) -> float:
    letters = "".join(_WORDS.findall(text))
    return len(_CJK.findall(letters)) / len(letters) if letters else 0.0


def _shingles(text: str) -> set[str] | set[tuple[str, ...]]:
    """What two extractions of one page are compared by: character bigrams of CJK text, word trigrams else."""
    if _cjk_share(text) > CJK_PAGE:
        letters = "".join(_WORDS.findall(text))
        return {letters[i : i + 2] for i in range(len(letters) - 1)}
    words = _WORDS.findall(text.lower())
    return {tuple(words[i : i + 3]) for i in range(len(words) - 2)}


def _within(inner: str, outer: str) -> float:
    """Share of inner's shingles found in outer."""
    mine = _shingles(inner)
    return len(mine & _shingles(outer)) / len(mine) if mine else 0.0


def _automatic(root: lxml.html.HtmlElement, url: str, settings: ExtractionSettings) -> tuple[str, str, float]:
    """(html, extractor, text weight) by trafilatura and, by the settings' rule, readability."""
    titles = _titles(root) if settings.tidy else (set(), "")
    html = _trafilatura(root, url, settings)
    if html and settings.tidy:
        html = _tidy(html, titles)
    text = html_to_text(html) if html else ""
    weight = _weight(text)
    short = weight < settings.fallback_below
    second_opinion = settings.fallback == "always" or (
        settings.fallback == "second-opinion" and _cjk_share(text) > CJK_PAGE
    )
    wanted = {"never": False, "empty": not html, "short": short, "longer": True}.get(settings.fallback, short)
    if not (wanted or second_opinion):
        return html, f"trafilatura {_version('trafilatura')}", weight
    other = _readability(root, url)
    if other and settings.tidy:
        other = _tidy(other, titles)
    other_text = html_to_text(other) if other else ""
    other_weight = _weight(other_text)
    readability = other, f"readability-lxml {_version('readability-lxml')}", other_weight
    if other_weight > weight and (wanted or short):
        return readability
    if second_opinion and other_weight >= MIN_WEIGHT:
        # On CJK pages readability's choice of container shows where the article is: trafilatura, whose class and
        # id vocabulary is that of English sites, can keep much of the page's frame (layout tables, reader
        # comments, stock tickers) or lose the article's lists.
        cut = _confirmed(html, other_text)
        cut_text = html_to_text(cut) if cut is not html else text
        if (
            _within(cut_text, other_text) >= settings.superset_share
            and _within(other_text, cut_text) < settings.superset_share
        ):
            return readability
        if cut is not html:
            both = f"trafilatura {_version('trafilatura')}+readability-lxml {_version('readability-lxml')}"
            return cut, both, _weight(cut_text)
    return html, f"trafilatura {_version('trafilatura')}", weight


# Words that put a page behind a login or a paywall, in the languages of the project's feeds.
_WALL = re.compile(
    r"log ?in|sign ?in|sign up|subscribe|subscription|members? only|register|paywall|"
    r"登录|登入|注册|订阅|會員|会员|訂閱|付费|付費|扫码阅读|掃碼",
    re.IGNORECASE,
)


def _diagnose(root: lxml.html.HtmlElement, weight: float) -> str:
    """Why a page gave (almost) no article text, in one line."""
    scripts = sum(1 for _ in root.iter("script"))
    visible = root.xpath("string(//body)") if root.find("body") is not None else ""
    for element in root.iter("script", "style", "noscript", "template"):
        if element.text:
            visible = visible.replace(element.text, " ")
    visible_weight = _weight(visible)
    if root.xpath("//input[translate(@type, 'PASWORD', 'pasword')='password']") or (
        visible_weight < 4 * MIN_WEIGHT and _WALL.search(visible)
    ):
        return f"login or paywall: {visible_weight:.0f} characters of text around a sign-in or subscribe prompt"
    if visible_weight < MIN_WEIGHT and scripts:
        return f"no text without JavaScript: {scripts} scripts and {visible_weight:.0f} characters of text"
    if visible_weight < MIN_WEIGHT:
        return f"no text: {visible_weight:.0f} characters on the whole page"
    return f"no article found: {weight:.0f} characters of article text out of {visible_weight:.0f} on the page"


def extract_article(
    body: bytes,
    url: str,
    content_type: str | None = None,
    *,
    content_selector: str | None = None,
    remove_selectors: Sequence[str] = (),
    settings: ExtractionSettings = DEFAULT_SETTINGS,
) -> ExtractedArticle:
    """The article of a fetched page, as sanitised HTML with absolute URLs.

    `url` is the page's final URL (after redirects) and `content_type` its Content-Type header. With a
    `content_selector` (CSS) its matches are the article; `remove_selectors` (CSS) are cut out of the page
    first, on either path. Raises ExtractionError, with a one-line reason, for anything that gives no article:
    a page that is not HTML, a script-only page, a login wall, a selector that is invalid or matches nothing."""
    if reason := not_html(body, content_type):
        raise ExtractionError(reason)
    text, encoding = decode_html(body, content_type)
    root = parse_page(text)
    if root is None:
        raise ExtractionError("unparseable HTML")
    base = base_url(root, url)
    remove_selected(root, remove_selectors)
    if content_selector:
        matches = select_css(root, content_selector, "content_selector")
        if not matches:
            raise ExtractionError(f"content_selector {content_selector!r} matched nothing")
        html = "\n".join(lxml.html.tostring(element, encoding="unicode", with_tail=False) for element in matches)
        extractor, weight = "selector", _weight(html_to_text(html))
    else:
        if settings.captions_as_paragraphs:
            captions_to_paragraphs(root)
        if settings.unstyle:
            unstyle(root)
        if settings.unwrap_layout_tables:
            unwrap_layout_tables(root)
        if settings.mark_container:
            mark_container(root)
        html, extractor, weight = _automatic(root, base, settings)
    if weight < MIN_WEIGHT:
        if content_selector:
            raise ExtractionError(f"content_selector {content_selector!r} matched {weight:.0f} characters of text")
        raise ExtractionError(_diagnose(root, weight))
    safe = sanitize_html(html, base)
    return ExtractedArticle(safe, len(html_to_text(safe)), extractor, encoding)


# ---------------------------------------------------------------------------------------------------------
# Does a feed's own text look cut?

# Shorter than this (text weight) reads as a teaser: 500 Latin characters, about 80 words, or 200 Chinese
# characters. Teasers run to 150-400 Latin characters or 50-150 Chinese ones; whole posts, even short news, to
# over 1,500 and 500. A short complete post is taken for a teaser: fetching its page costs one request.
TRUNCATED_BELOW = 500
# Without a full stop at its end, text up to this weight was most likely cut at a length.
UNFINISHED_BELOW = 1500
_ENDINGS = re.compile(
    r"(?:…|\.\.\.|⋯|»|›|→|>>|read more|read the full (?:story|article|post)|continue reading|keep reading|"
    r"阅读全文|查看全文|阅读原文|展开全文|点击查看|查看更多|阅读更多|未完待续|閱讀全文|繼續閱讀|閱讀更多|詳全文)"
    r"[\s\W]{0,8}$",  # closing brackets, periods, arrows
    re.IGNORECASE,
)
# A last link whose words say "more": "more", "Full story", "更多", "详情". Words that also end real sentences
# ("...and more.") count only as such a link.
_MORE_LINK = re.compile(
    r"<a\b[^>]*>\s*(?:<[^>]+>\s*)*(?:(?:read |see |view )?more|full (?:story|article|post)|continue|"
    r"更多|详情|全文|详细|更多内容|詳情|更多內容)\b[^<]{0,12}(?:</[^>]+>\s*)*</a>\s*(?:</[^>]+>\s*)*$",
    re.IGNORECASE,
)
# WordPress appends this to its excerpts after the "[…]": look past it.
_WORDPRESS_FOOTER = re.compile(r"\s*The post .{1,300} appeared first on .{1,200}$", re.IGNORECASE | re.DOTALL)
_FINISHED = re.compile(r"[.!?。！？”\"'’」』）)\]】]\s*$")


def looks_truncated(feed_html: str) -> bool:
    """Whether an entry's own text (HTML, as the feed gives it) looks like a teaser of a longer article: it is
    short, or ends in a "…", "[...]", "Read more", "阅读全文" or a "more" link, or stops mid-sentence."""
    text = _WORDPRESS_FOOTER.sub("", html_to_text(feed_html or "")).strip()
    if not text:
        return True
    if _ENDINGS.search(text[-60:]) or _MORE_LINK.search(feed_html[-400:]):
        return True
    weight = _weight(text)
    return weight < TRUNCATED_BELOW or (weight < UNFINISHED_BELOW and not _FINISHED.search(text))
