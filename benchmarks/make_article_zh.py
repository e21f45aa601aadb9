"""Write the Chinese article-extraction corpus: news pages in GBK, GB2312, Big5 and UTF-8, with their true text.

    python benchmarks/make_article_zh.py [OUT_DIR]    (default: benchmarks/data/article-zh)

Deterministic: the same script writes the same bytes. Each article (articles.txt beside the output) is laid out as one
of six kinds of news site (a portal, a tax bureau's table layout, a stock-market site, an HTML5 magazine, a
WeChat article mirror, a Taiwanese news site), with what surrounds an article there: navigation, breadcrumbs,
related-link sidebars, share buttons, reader comments, an ICP licence footer, inline scripts and styles.
Each page is encoded the way it is served, with the charset declared as pages declare it (or lie about it):
in the Content-Type header only, in <meta> only, in both, in neither, or wrongly in one of them.

ground-truth.json maps each page to {file, url, content_type (the header it is served with), encoding (what its
bytes really are), title, articleBody}. articleBody is the article as a reader sees it: paragraphs,
subheadings, list items, table rows, figure captions; not the title, byline, source line, editor's name,
share buttons, disclaimers, related links or comments.
"""

from __future__ import annotations

import html
import json
import random
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

DEFAULT_OUT = Path(__file__).resolve().parent / "data" / "article-zh"
TEXTS = DEFAULT_OUT / "articles.txt"


class Text(NamedTuple):
    key: str
    title: str
    source: str
    author: str
    date: str
    body: str


def read_texts(path: Path = TEXTS) -> list[Text]:
    """The articles of articles.txt ("=== key", title/source/author/date lines, a blank line, the body)."""
    texts = []
    for chunk in path.read_text(encoding="utf-8").split("\n=== ")[1:]:
        head, body = chunk.split("\n\n", 1)
        key, *fields = head.split("\n")
        values = dict(field.split(": ", 1) for field in fields)
        fields_in_order = (values["title"], values["source"], values["author"], values["date"])
        texts.append(Text(key.strip(), *fields_in_order, body.strip()))
    return texts


# How each page is served: (site layout, the encoding of its bytes, how the charset is declared).
# Declarations: "both" (header and meta), "header", "meta" (<meta charset>), "http-equiv" (<meta http-equiv>),
# "none"; "lie-header:X" (the header says X, the meta tells the truth), "lie-meta:X" (only a meta, saying X),
# "lie-both:X:Y" (header X, meta Y, both wrong).
PLAN: dict[str, tuple[str, str, str]] = {
    "zh01": ("gov", "gb2312", "both"),
    "zh02": ("portal", "utf-8", "both"),
    "zh03": ("finance", "gbk", "meta"),
    "zh04": ("magazine", "utf-8", "none"),
    "zh05": ("finance", "gbk", "header"),
    "zh06": ("finance", "utf-8", "meta"),
    "zh07": ("gov", "gb2312", "http-equiv"),
    "zh08": ("portal", "gbk", "lie-header:utf-8"),
    "zh09": ("gov", "gbk", "none"),
    "zh10": ("portal", "utf-8", "none"),
    "zh11": ("finance", "gb2312", "header"),
    "zh12": ("finance", "utf-8", "lie-both:gbk:gb2312"),
    "zh13": ("magazine", "utf-8", "both"),
    "zh14": ("portal", "gbk", "lie-header:utf-8"),
    "zh15": ("portal", "gb2312", "meta"),
    "zh16": ("wechat", "utf-8", "both"),
    "zh17": ("gov", "gb2312", "lie-header:iso-8859-1"),
    "zh18": ("gov", "gbk", "http-equiv"),
    "zh19": ("finance", "utf-8", "header"),
    "zh20": ("finance", "gbk", "both"),
    "zh21": ("finance", "gb2312", "meta"),
    "zh22": ("magazine", "utf-8", "meta"),
    "zh23": ("gov", "gb2312", "both"),
    "zh24": ("gov", "gbk", "lie-header:utf-8"),
    "zh25": ("magazine", "gbk", "meta"),
    "zh26": ("portal", "utf-8", "lie-header:gbk"),
    "zh27": ("finance", "gb2312", "lie-header:iso-8859-1"),
    "zh28": ("finance", "utf-8", "both"),
    "zh29": ("wechat", "utf-8", "meta"),
    "zh30": ("portal", "gbk", "none"),
    "zh31": ("gov", "gb2312", "header"),
    "zh32": ("wechat", "gbk", "meta"),
    "tw01": ("taiwan", "big5", "both"),
    "tw02": ("taiwan", "big5", "meta"),
    "tw03": ("taiwan", "big5", "header"),
    "tw04": ("taiwan", "big5", "none"),
    "tw05": ("taiwan", "big5", "lie-header:utf-8"),
    "tw06": ("taiwan", "big5", "lie-header:gb2312"),
    "tw07": ("taiwan", "utf-8", "both"),
    "tw08": ("taiwan", "utf-8", "lie-meta:big5"),
}
# The codec that writes each encoding's bytes: sites that declare gb2312 write GBK (镕, 喆 and the like are
# not in GB2312), and Big5 sites write Microsoft's cp950.
CODECS = {"utf-8": "utf-8", "gbk": "gbk", "gb2312": "gbk", "big5": "cp950"}


# ---------------------------------------------------------------------------------------------------------
# The article body: a light markup (see article_zh_texts.py) parsed into blocks.


@dataclass(frozen=True)
class Block:
    kind: str  # "p", "h", "ul", "ol", "table", "figure"
    items: tuple[str, ...]  # the text (one item), the list items, the table rows ("|"-joined) or (caption, src)


def parse_body(body: str) -> list[Block]:
    blocks = []
    for chunk in body.split("\n\n"):
        lines = [line.strip() for line in chunk.strip().split("\n")]
        first = lines[0]
        if first.startswith("## "):
            blocks.append(Block("h", (first[3:],)))
        elif first.startswith("- "):
            blocks.append(Block("ul", tuple(line[2:] for line in lines)))
        elif re.match(r"\d+\. ", first):
            blocks.append(Block("ol", tuple(line.split(". ", 1)[1] for line in lines)))
        elif first.startswith("| "):
            blocks.append(Block("table", tuple(line.strip("| ").replace(" | ", "|") for line in lines)))
        elif image := re.fullmatch(r"!\[(.*)\]\((.*)\)", first):
            blocks.append(Block("figure", (image.group(1), image.group(2))))
        else:
            blocks.append(Block("p", ("".join(lines),)))
    return blocks


def true_text(blocks: list[Block]) -> str:
    """What a reader takes for the article: one line per paragraph, heading, item, table row or caption."""
    lines: list[str] = []
    for block in blocks:
        if block.kind == "table":
            lines.extend(" ".join(row.split("|")) for row in block.items)
        elif block.kind == "figure":
            lines.append(block.items[0])
        else:
            lines.extend(block.items)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# What surrounds articles.

COMMENTS_SIMPLIFIED = [
    ("上海网友", "政策很好，希望基层执行到位，别让企业来回跑。"),
    ("江东网友", "请问个体户的经营所得汇算也是在个税App上办吗？"),
    ("北京网友 老李", "今年退了800多块，到账很快，点赞！"),
    ("广东网友", "说得轻巧，小企业现在最缺的是订单，不是减税。"),
    ("浙江网友", "能不能把申报表再简化一点，填一次要半天。"),
    ("手机用户", "转发给财务同事看看。"),
    ("四川网友", "数据好看，实际感受不到，房贷压力还是很大。"),
    ("湖南网友", "12366电话确实好打了，客服很耐心，解释得也清楚。"),
    ("山东网友", "希望多出一些这样的解读文章，通俗易懂，比看文件强多了。"),
    ("匿名用户", "楼上说的对，关键还是落实，文件发了不等于企业就能享受到。"),
    ("天津网友", "去年也是这么说的，到我们这里又要补一堆材料。"),
    ("重庆网友", "小编能不能再出一篇讲讲经营所得和劳务报酬的区别？"),
]
COMMENTS_TRADITIONAL = [
    ("台北讀者", "報稅系統今年順暢很多，五分鐘就完成了。"),
    ("高雄讀者", "薪水沒漲，稅倒是一直在變，看不懂。"),
    ("新竹讀者", "希望政府多照顧年輕人，房價真的太高了。"),
    ("匿名", "請問股利可以選擇分開計稅嗎？有沒有人算過哪種比較划算？"),
    ("台中讀者", "推一個，整理得很清楚，收藏起來慢慢看。"),
    ("桃園讀者", "課稅也沒用，該炒的還是在炒。"),
]
EXTRA_HEADLINES_SIMPLIFIED = [
    "多地公积金贷款政策优化 首套房最低首付比例降至20%",
    "国务院常务会议：研究部署进一步稳外贸稳外资举措",
    "三部门：继续实施公共租赁住房税收优惠政策",
    "前10个月全国网上零售额同比增长11.2%",
    "黄金价格再创新高 金饰克价突破750元",
    "车险综合改革五周年：车均保费下降逾两成",
    "10月CPI同比上涨0.3% PPI环比降幅收窄",
    "多家银行下调大额存单利率 三年期产品难觅3%",
]
EXTRA_HEADLINES_TRADITIONAL = [
    "台積電第三季營收創新高 毛利率優於預期",
    "基本工資明年調升至2萬8590元 時薪190元",
    "新青安貸款排擠效應 銀行房貸水位逼近上限",
    "勞保年金改革方案出爐 費率逐年調升",
    "國發會：景氣燈號連續三個月亮黃紅燈",
    "證交所推動當沖降稅延長 散戶交易熱絡",
]
ICP = ["京ICP备10023456号-1", "浙ICP备05012345号", "粤ICP备12087654号-3", "沪ICP证130164号"]
POLICE = ["京公网安备11010502034567号", "浙公网安备33010602001234号", "粤公网安备44030402000871号"]
ANALYTICS = """\
<script>
var _hmt = _hmt || [];
(function() {
  var hm = document.createElement("script");
  hm.src = "https://stats.example.net/hm.js?%s";
  var s = document.getElementsByTagName("script")[0];
  s.parentNode.insertBefore(hm, s);
})();
</script>"""


@dataclass(frozen=True)
class Page:
    """An article with what its site puts around it."""

    text: Text
    blocks: list[Block]
    url: str
    rng: random.Random
    others: list[Text]  # the site's other articles, for related links and sidebars

    def headlines(self, count: int, extra: list[str]) -> list[tuple[str, str]]:
        pool = [(t.title, t.key) for t in self.others if t.key != self.text.key] + [(h, "") for h in extra]
        picked = self.rng.sample(pool, min(count, len(pool)))
        return [(title, key or f"{self.rng.randrange(10**6, 10**7)}") for title, key in picked]

    def comments(self, count: int, pool: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
        picked = self.rng.sample(pool, count)
        hours = sorted(self.rng.sample(range(8, 23), count))
        return [
            (user, f"{self.text.date[:10]} {h:02d}:{self.rng.randrange(60):02d}", body)
            for (user, body), h in zip(picked, hours, strict=True)
        ]

    def token(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"


def esc(text: str) -> str:
    return html.escape(text, quote=False)


def table_html(rows: tuple[str, ...], attrs: str = "", cell: str = "") -> str:
    head, *rest = [row.split("|") for row in rows]
    out = [f"<table{attrs}>", "<tr>" + "".join(f"<th{cell}>{esc(c)}</th>" for c in head) + "</tr>"]
    out += ["<tr>" + "".join(f"<td{cell}>{esc(c)}</td>" for c in row) + "</tr>" for row in rest]
    return "\n".join([*out, "</table>"])


def render_blocks(
    blocks: list[Block],
    paragraph: Callable[[str], str],
    heading: Callable[[str], str],
    figure: Callable[[str, str], str],
    table_attrs: str = ' border="1" cellspacing="0" cellpadding="4"',
    item: Callable[[str], str] = lambda text: f"<li>{esc(text)}</li>",
) -> str:
    out = []
    for block in blocks:
        if block.kind == "p":
            out.append(paragraph(block.items[0]))
        elif block.kind == "h":
            out.append(heading(block.items[0]))
        elif block.kind in ("ul", "ol"):
            out.append(f"<{block.kind}>" + "".join(item(text) for text in block.items) + f"</{block.kind}>")
        elif block.kind == "table":
            out.append(table_html(block.items, table_attrs))
        else:
            out.append(figure(*block.items))
    return "\n".join(out)


def meta_charset(label: str | None, form: str) -> str:
    if label is None:
        return ""
    if form == "http-equiv":
        return f'<meta http-equiv="Content-Type" content="text/html; charset={label}" />'
    return f'<meta charset="{label}">'


# ---------------------------------------------------------------------------------------------------------
# The six layouts. Each returns the whole page as text; `charset` is the <meta> to put in its head.


def portal(page: Page, charset: str) -> str:
    t, rng = page.text, page.rng
    related = page.headlines(6, EXTRA_HEADLINES_SIMPLIFIED)
    hot = page.headlines(10, EXTRA_HEADLINES_SIMPLIFIED)
    body = render_blocks(
        page.blocks,
        paragraph=lambda s: f"<p>{esc(s)}</p>",
        heading=lambda s: f"<p><strong>{esc(s)}</strong></p>",
        figure=lambda cap, src: (
            f'<div class="img_wrapper"><img src="{src}" alt="{esc(cap)}" title="{esc(cap)}">'
            f'<span class="img_descr">{esc(cap)}</span></div>'
        ),
    )
    comments = "\n".join(
        f'<div class="pl_item"><div class="pl_user">{esc(u)}</div><div class="pl_time">{w}</div>'
        f'<div class="pl_txt">{esc(c)}</div><div class="pl_act"><a href="javascript:;">回复</a>'
        f' <a href="javascript:;">赞({rng.randrange(1, 300)})</a></div></div>'
        for u, w, c in page.comments(rng.randrange(3, 6), COMMENTS_SIMPLIFIED)
    )
    return f"""<!DOCTYPE html>
<html>
<head>
{charset}
<title>{esc(t.title)}_财经频道_华财网</title>
<meta name="keywords" content="税收,财经,政策解读">
<meta name="description" content="{esc(page.blocks[0].items[0][:70])}">
<link rel="stylesheet" href="//static.huacai.example/css/article.css?v=20240301">
<style>
body{{font:14px/1.8 "Microsoft YaHei",SimSun;margin:0}}.top-bar{{background:#f5f5f5;height:30px}}
.wrap{{width:1000px;margin:0 auto}}.main-left{{float:left;width:680px}}.main-right{{float:right;width:300px}}
#artibody p{{text-indent:2em;margin:0 0 15px}}.pl_item{{border-bottom:1px dashed #ddd;padding:8px 0}}
</style>
<script>window.ARTICLE_CONF = {{docid: "ik{rng.randrange(10**8, 10**9)}", channel: "finance", comment: true}};</script>
</head>
<body>
<div class="top-bar"><div class="wrap"><a href="/">华财网首页</a> | <a href="/news/">新闻</a> | \
<a href="/finance/">财经</a> |
<a href="/tech/">科技</a> | <a href="/auto/">汽车</a> | <a href="/house/">房产</a> | <a href="/edu/">教育</a>
<span class="login"><a href="/passport/login">登录</a> <a href="/passport/register">注册</a></span></div></div>
<div class="header"><div class="wrap"><a class="logo" href="/"><img src="/images/logo.png" alt="华财网"></a>
<ul class="nav"><li><a href="/finance/">财经首页</a></li><li><a href="/finance/stock/">股票</a></li>
<li><a href="/finance/fund/">基金</a></li><li><a href="/finance/tax/">税收</a></li><li>\
<a href="/finance/bank/">银行</a></li>
<li><a href="/finance/insurance/">保险</a></li><li><a href="/finance/money/">理财</a></li></ul>
<form class="search" action="/search"><input name="q" placeholder="搜索"><button>搜索</button></form></div></div>
<div class="wrap">
<div class="crumb"><a href="/">首页</a> &gt; <a href="/finance/">财经</a> &gt; <a href="/finance/tax/">税收</a> &gt; \
正文</div>
<div class="main-left">
<h1 class="main-title">{esc(t.title)}</h1>
<div class="date-source"><span class="date">{t.date}</span> <span class="source">来源：{esc(t.source)}</span>
<span class="author">{esc(t.author)}</span></div>
<div class="share-bar">分享到：<a href="javascript:;" class="wx">微信</a> <a href="javascript:;" class="wb">微博</a>
<a href="javascript:;" class="qzone">QQ空间</a> <a href="javascript:;" class="fav">收藏</a></div>
<div class="article" id="artibody">
{body}
<p class="article-editor">责任编辑：{rng.choice(["张伟", "李静", "王磊", "赵丹"])}</p>
</div>
<div class="keywords">关键词：<a href="/tag/税收">税收</a> <a href="/tag/政策">政策</a> <a href="/tag/企业">企业</a>\
</div>
<div class="related"><h3>相关阅读</h3><ul>
{"".join(f'<li><a href="/roll/{k}.shtml">{esc(h)}</a></li>' for h, k in related)}
</ul></div>
<div class="pl_box" id="pl"><div class="pl_hd">网友评论 <span>已有{rng.randrange(20, 900)}人参与</span></div>
<div class="pl_post"><textarea placeholder="文明上网，理性发言"></textarea><button>发布</button></div>
{comments}
<a class="pl_more" href="/comment/list">查看全部评论</a></div>
</div>
<div class="main-right">
<div class="side-box"><h3>热门排行</h3><ol>
{"".join(f'<li><a href="/roll/{k}.shtml">{esc(h)}</a></li>' for h, k in hot)}
</ol></div>
<div class="side-ad"><a href="https://ad.example.net/c?{page.token()}"><img src="/ad/300x250.jpg" alt="广告"></a></div>
<div class="side-box"><h3>财经日历</h3><ul><li>09:30 国家统计局公布月度数据</li><li>10:00 央行公开市场操作</li>
<li>15:00 A股收盘</li></ul></div>
</div>
</div>
<div class="footer"><div class="wrap"><p><a href="/about/">关于华财</a> | <a href="/contact/">联系我们</a> |
<a href="/ads/">广告服务</a> | <a href="/sitemap/">网站地图</a> | <a href="/legal/">法律声明</a></p>
<p>Copyright &copy; 1998-2024 华财网 All Rights Reserved 版权所有</p>
<p>{rng.choice(ICP)} {rng.choice(POLICE)} 互联网新闻信息服务许可证：11120180{rng.randrange(100, 999)}</p>
<p>违法和不良信息举报电话：010-5898{rng.randrange(1000, 9999)} 举报邮箱：jubao@huacai.example</p></div></div>
{ANALYTICS % page.token()}
<script src="//static.huacai.example/js/comment.js"></script>
</body>
</html>
"""


def gov(page: Page, charset: str) -> str:
    t, rng = page.text, page.rng
    body = render_blocks(
        page.blocks,
        paragraph=lambda s: f'<p style="text-indent:2em;line-height:2;">{esc(s)}</p>',
        heading=lambda s: f'<p style="text-indent:2em;line-height:2;"><b>{esc(s)}</b></p>',
        figure=lambda cap, src: f'<p align="center"><img src="{src}" border="0"></p><p align="center">{esc(cap)}</p>',
        table_attrs=' width="90%" border="1" align="center" cellpadding="3" style="border-collapse:collapse"',
    )
    nav = ["首页", "机构概况", "新闻动态", "政策文件", "纳税服务", "互动交流", "政府信息公开", "专题专栏"]
    menu = " | ".join(f'<a href="/col/col{i}/index.html">{n}</a>' for i, n in enumerate(nav, 101))
    return f"""<html>
<head>
{charset}
<title>{esc(t.title)}</title>
<meta name="SiteName" content="国家税务总局江东市税务局">
<meta name="ArticleTitle" content="{esc(t.title)}">
<meta name="PubDate" content="{t.date}">
<link href="/css/style.css" rel="stylesheet" type="text/css">
<script type="text/javascript" src="/js/jquery-1.8.3.min.js"></script>
<script type="text/javascript">
function doZoom(size) {{ document.getElementById('zoom').style.fontSize = size + 'px'; }}
function doPrint() {{ window.print(); }}
</script>
</head>
<body leftmargin="0" topmargin="0">
<table width="1000" border="0" align="center" cellpadding="0" cellspacing="0">
<tr><td><img src="/images/banner.jpg" width="1000" height="120" alt="国家税务总局江东市税务局"></td></tr>
<tr><td class="nav" bgcolor="#1f5fa8">{menu}</td></tr>
</table>
<table width="1000" border="0" align="center" cellpadding="0" cellspacing="0">
<tr><td class="position" height="30">当前位置：<a href="/">首页</a> &gt; <a href="/col/col103/index.html">新闻动态</a>
&gt; <a href="/col/col1031/index.html">税务要闻</a></td></tr>
</table>
<table width="1000" border="0" align="center" cellpadding="0" cellspacing="0" class="main">
<tr><td width="20"></td><td valign="top">
<table width="100%" border="0" cellspacing="0" cellpadding="0">
<tr><td align="center" class="title" height="60"><font size="5" color="#c00000"><b>{esc(t.title)}</b></font></td></tr>
<tr><td align="center" class="info" height="30" style="border-bottom:1px solid #ccc">发布日期：{t.date[:10]}
&nbsp;&nbsp;来源：{esc(t.source)}&nbsp;&nbsp;\
浏览次数：<script language="javascript">document.write({rng.randrange(200, 9000)});</script>
&nbsp;&nbsp;【字体：<a href="javascript:doZoom(18)">大</a> <a href="javascript:doZoom(16)">中</a>
<a href="javascript:doZoom(14)">小</a>】</td></tr>
<tr><td id="zoom" class="zw" style="font-size:16px;padding:20px 30px">
{body}
</td></tr>
<tr><td align="right" height="40">【<a href="javascript:doPrint()">打印本页</a>】\
【<a href="javascript:window.close()">关闭窗口</a>】</td></tr>
</table>
</td><td width="20"></td></tr>
</table>
<table width="1000" border="0" align="center" cellpadding="0" cellspacing="0" class="links">
<tr><td height="40">相关链接：<select onchange="window.open(this.value)"><option>--政府网站--</option>
<option value="https://www.gov.example/">中国政府网</option><option value="https://tax.example/">国家税务总局</option>
<option value="https://mof.example/">财政部</option></select>
<select onchange="window.open(this.value)"><option>--兄弟单位--</option><option value="#">江东市财政局</option>
<option value="#">江东市市场监督管理局</option></select></td></tr>
</table>
<table width="1000" border="0" align="center" cellpadding="0" cellspacing="0" class="footer" bgcolor="#eeeeee">
<tr><td align="center" height="100">主办单位：国家税务总局江东市税务局 地址：江东市人民路{rng.randrange(1, 300)}号
邮编：310{rng.randrange(100, 999)}<br>纳税缴费服务热线：12366 网站标识码：33010000{rng.randrange(10, 99)}
<br>{rng.choice(ICP)} <img src="/images/ga.png"> {rng.choice(POLICE)}<br>
<a href="/col/col999/index.html">网站地图</a> | <a href="/col/col998/index.html">联系我们</a>
<script id="_jiucuo_" sitecode="3301000012" src="https://zfwzgl.example/jiucuo.js"></script></td></tr>
</table>
</body>
</html>
"""


def finance(page: Page, charset: str) -> str:
    t, rng = page.text, page.rng
    first = page.blocks[0].items[0]
    summary = first[: first.find("。") + 1] if "。" in first[:120] else first[:80] + "……"
    body = render_blocks(
        page.blocks,
        paragraph=lambda s: f"<p>　　{esc(s)}</p>",
        heading=lambda s: f"<p>　　<strong>{esc(s)}</strong></p>",
        figure=lambda cap, src: (
            f'<center><img src="{src}" style="max-width:600px"></center><p class="pictext">{esc(cap)}</p>'
        ),
    )
    stocks = "".join(
        f"<tr><td>{rng.randrange(600000, 603999)}</td><td>{n}</td><td>{rng.uniform(3, 60):.2f}</td>"
        f"<td>{rng.uniform(-5, 5):+.2f}%</td></tr>"
        for n in rng.sample(["工商银行", "中国平安", "招商银行", "中国石油", "长江电力", "贵州茅台", "中信证券"], 4)
    )
    comments = "\n".join(
        f'<div class="reply_item"><span class="reply_user">{esc(u)}</span><span class="reply_time">{w}</span>'
        f'<div class="reply_text">{esc(c)}</div></div>'
        for u, w, c in page.comments(rng.randrange(2, 5), COMMENTS_SIMPLIFIED)
    )
    recommended = page.headlines(8, EXTRA_HEADLINES_SIMPLIFIED)
    return f"""<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml">
<head>
{charset}
<title>{esc(t.title)}_东方财经网</title>
<meta name="keywords" content="{esc(t.title[:12])}">
<style type="text/css">
.newsContent h1{{font-size:26px;color:#000}}.Body p{{font-size:16px;line-height:30px}}.b-review{{color:#999;\
font-size:12px}}
</style>
<script type="text/javascript">var articleInfo = {{ "code": "{rng.randrange(10**15, 10**16)}", "type": "news" }};\
</script>
</head>
<body>
<div class="topnav"><a href="/">东方财经首页</a> <a href="/quote/">行情</a> <a href="/data/">数据</a> \
<a href="/stock/">股票</a>
<a href="/fund/">基金</a> <a href="/bond/">债券</a> <a href="/forex/">外汇</a> <a href="/guba/">股吧</a> \
<a href="/blog/">博客</a></div>
<div class="quote-bar">上证指数 <b>{rng.uniform(2900, 3400):.2f}</b> 深证成指 <b>{rng.uniform(9000, 11000):.2f}</b>
创业板指 <b>{rng.uniform(1700, 2200):.2f}</b></div>
<div class="main">
<div class="contentwrap">
<div class="newsContent">
<h1>{esc(t.title)}</h1>
<div class="infos"><div class="item">{t.date[:4]}年{t.date[5:7]}月{t.date[8:10]}日 {t.date[11:]}</div>
<div class="item">来源：{esc(t.source)}</div><div class="item">作者：{esc(t.author)}</div>
<div class="item"><a href="#comment">评论({rng.randrange(0, 300)})</a></div></div>
<div class="abstract"><strong>摘要</strong>【{esc(t.title[:16])}】{esc(summary)}</div>
<div id="ContentBody" class="Body">
{body}
<p class="em_media">（文章来源：{esc(t.source)}）</p>
<div class="b-review">郑重声明：东方财经网发布此信息的目的在于传播更多信息，\
与本站立场无关。东方财经网不保证该信息（包括但不限于文字、视频、音频、数据及图表）全部或者部分内容的准确性、真实性、\
完整性、有效性、及时性、原创性等。相关信息并未经过本网站证实，不对您构成任何投资建议，据此操作，风险自担。</div>
</div>
<div class="res-edit">（责任编辑：DF{rng.randrange(100, 600)}）</div>
</div>
<div class="stocks"><h3>文章相关股票</h3><table><tr><th>代码</th><th>名称</th><th>最新价</th><th>涨跌幅</th>\
</tr>{stocks}</table></div>
<div class="zixun-list"><h3>推荐阅读</h3><ul>
{"".join(f'<li><a href="/a/2024{k}.html">{esc(h)}</a></li>' for h, k in recommended)}
</ul></div>
<div class="guba-reply" id="comment"><h3>股吧热评</h3>
{comments}
<a href="/guba/">进入股吧 &gt;&gt;</a></div>
</div>
<div class="sider"><div class="hot-stock"><h3>人气榜</h3><ol><li>中信证券</li><li>东方通信</li><li>比亚迪</li></ol>\
</div>
<div class="app-qrcode"><img src="/images/app-qr.png"><p>扫码下载东方财经APP</p></div></div>
</div>
<div class="footer"><p><a href="/about/">关于我们</a> <a href="/about/contact.html">联系我们</a> \
<a href="/about/ad.html">广告合作</a>
<a href="/about/risk.html">风险提示</a></p><p>东方财经网 版权所有 郑重声明：用户在社区发表的所有资料、\
言论等仅代表个人观点，与本网站立场无关</p>
<p>{rng.choice(ICP)} 增值电信业务经营许可证：沪B2-20070{rng.randrange(100, 999)} 证券期货相关业务许可证</p></div>
{ANALYTICS % page.token()}
</body>
</html>
"""


def magazine(page: Page, charset: str) -> str:
    t, rng = page.text, page.rng
    body = render_blocks(
        page.blocks,
        paragraph=lambda s: f"<p>{esc(s)}</p>",
        heading=lambda s: f"<h2>{esc(s)}</h2>",
        figure=lambda cap, src: (
            f'<figure class="article-image"><img src="{src}" alt="{esc(cap)}" loading="lazy">'
            f"<figcaption>{esc(cap)}</figcaption></figure>"
        ),
        table_attrs=' class="data-table"',
    )
    hot = page.headlines(6, EXTRA_HEADLINES_SIMPLIFIED)
    comments = "\n".join(
        f'<li class="comment"><div class="comment-meta"><b>{esc(u)}</b> <time>{w}</time></div><p>{esc(c)}</p></li>'
        for u, w, c in page.comments(rng.randrange(2, 5), COMMENTS_SIMPLIFIED)
    )
    return f"""<!DOCTYPE html>
<html lang="zh-CN">
<head>
{charset}
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(t.title)} | 观潮</title>
<meta property="og:title" content="{esc(t.title)}">
<meta property="og:type" content="article">
<script type="application/ld+json">{{"@context":"https://schema.org","@type":"NewsArticle","headline":"{esc(t.title)}","datePublished":"{t.date[:10]}T{t.date[11:]}:00+08:00","author":{{"@type":"Person","name":"{esc(t.author)}"}}}}</script>
<style>:root{{--brand:#d7000f}}body{{margin:0;font-family:-apple-system,"PingFang SC",sans-serif}}
.article-content p{{font-size:17px;line-height:1.9;margin:1em 0}}figure{{margin:1.5em 0}}figcaption{{color:#888;\
font-size:14px}}</style>
</head>
<body>
<header class="site-header"><a class="logo" href="/">观潮</a>
<nav class="main-nav"><a href="/">首页</a><a href="/macro/">宏观</a><a href="/finance/">金融</a>\
<a href="/company/">公司</a>
<a href="/tax/">财税</a><a href="/world/">全球</a><a href="/opinion/">观点</a><a href="/video/">视频</a></nav>
<a class="subscribe" href="/subscribe">订阅</a> <a class="login" href="/login">登录</a></header>
<main class="container">
<article class="article">
<header class="article-header">
<nav class="breadcrumb"><a href="/">首页</a> / <a href="/tax/">财税</a></nav>
<h1>{esc(t.title)}</h1>
<div class="article-meta"><span class="author">{esc(t.author)}</span> <time datetime="{t.date[:10]}">{t.date}</time>
<span class="source">{esc(t.source)}</span></div>
</header>
<div class="article-content">
{body}
</div>
<footer class="article-footer">
<div class="tags"><a href="/tag/1">财税</a><a href="/tag/2">政策</a></div>
<div class="share-bar"><button class="share-wechat">微信</button><button class="share-weibo">微博</button>
<button class="share-link">复制链接</button></div>
<p class="copyright-notice">版权声明：本文为观潮原创，未经授权不得转载。</p>
</footer>
</article>
<section class="comments" id="comments"><h3>评论（{rng.randrange(3, 120)}）</h3><ul>
{comments}
</ul><a href="/login">登录后参与评论</a></section>
<aside class="sidebar"><section class="hot-list"><h3>24小时热文</h3><ol>
{"".join(f'<li><a href="/article/{k}.html">{esc(h)}</a></li>' for h, k in hot)}
</ol></section>
<section class="newsletter"><h3>订阅观潮早报</h3><p>每天早上七点，一封邮件读懂财经大事。</p>
<form><input type="email" placeholder="邮箱地址"><button>订阅</button></form></section></aside>
</main>
<footer class="site-footer"><p>&copy; 2024 观潮 | <a href="/about">关于我们</a> | <a href="/join">加入我们</a></p>
<p>{rng.choice(ICP)} | {rng.choice(POLICE)}</p></footer>
<script>document.querySelectorAll('.share-link').forEach(function(b){{b.onclick=function(){{navigator.clipboard.writeText(location.href)}}}});</script>
</body>
</html>
"""


def wechat(page: Page, charset: str) -> str:
    t, rng = page.text, page.rng
    span = 'style="font-size: 15px;color: rgb(62, 62, 62);letter-spacing: 1px;"'
    body = render_blocks(
        page.blocks,
        paragraph=lambda s: (
            f'<section style="margin-bottom: 16px;"><p style="line-height: 1.75em;">'
            f"<span {span}>{esc(s)}</span></p></section>"
        ),
        heading=lambda s: (
            '<section style="margin: 24px 0 12px;border-left: 4px solid rgb(0, 112, 192);padding-left: 8px;">'
            f'<p><strong><span style="font-size: 17px;color: rgb(0, 112, 192);">{esc(s)}</span></strong></p></section>'
        ),
        figure=lambda cap, src: (
            f'<section style="text-align: center;"><img class="rich_pages wxw-img" data-src="{src}" src="{src}">'
            '<p style="text-align: center;"><span style="font-size: 12px;color: rgb(136, 136, 136);">'
            f"{esc(cap)}</span></p></section>"
        ),
        item=lambda s: f'<li><section style="line-height: 1.75em;"><span {span}>{esc(s)}</span></section></li>',
    )
    comments = "\n".join(
        f'<li class="discuss_item"><div class="nickname">{esc(u)}</div><div class="discuss_message">{esc(c)}</div>'
        f'<div class="discuss_extra_info">{w[5:]} <span class="praise_num">{rng.randrange(1, 99)}</span></div></li>'
        for u, w, c in page.comments(rng.randrange(2, 4), COMMENTS_SIMPLIFIED)
    )
    return f"""<!DOCTYPE html>
<html>
<head>
{charset}
<meta name="viewport"\
 content="width=device-width,initial-scale=1.0,maximum-scale=1.0,user-scalable=0,viewport-fit=cover">
<title>{esc(t.title)}</title>
<meta property="og:title" content="{esc(t.title)}">
<meta property="og:description" content="{esc(page.blocks[0].items[0][:50])}">
<style>.rich_media_title{{font-size:22px;line-height:1.4}}.rich_media_meta{{color:rgba(0,0,0,0.3)}}\
#js_pc_qr_code{{display:none}}</style>
<script>var biz = "MzA{rng.randrange(10**9, 10**10)}=="; var ct = "{rng.randrange(1700000000, 1730000000)}"; \
var msg_title = "{esc(t.title)}".html(false);</script>
</head>
<body id="activity-detail" class="zh_CN">
<div class="rich_media_area_primary">
<div id="img-content" class="rich_media_wrp">
<h1 class="rich_media_title" id="activity-name">{esc(t.title)}</h1>
<div id="meta_content" class="rich_media_meta_list">
<span class="rich_media_meta rich_media_meta_text">{esc(t.author)}</span>
<span class="rich_media_meta rich_media_meta_nickname" id="profileBt"><a href="javascript:void(0);\
" id="js_name">{esc(t.source)}</a></span>
<em id="publish_time" class="rich_media_meta rich_media_meta_text">{t.date[:10]}</em>
</div>
<div class="rich_media_content js_underline_content" id="js_content" style="visibility: hidden;">
{body}
<section style="text-align: center;margin-top: 32px;"><p><span style="font-size: 12px;color: rgb(178, 178, 178);\
">- END -</span></p>
<p><span style="font-size: 12px;color: rgb(178, 178, 178);">来源：{esc(t.source)}　编辑：{esc(t.author)}</span></p>
<img data-src="/mmbiz_jpg/{page.token()}/qrcode.jpg"><p><span style="font-size: 12px;">长按识别二维码，\
关注我们</span></p></section>
</div>
<div class="rich_media_tool" id="js_toobar3"><a id="js_view_source" href="javascript:void(0);">阅读原文</a>
<div class="media_tool_meta">阅读 <span id="readNum3">{rng.randrange(1000, 50000)}</span></div>
<div class="media_tool_meta"><span class="praise_num">{rng.randrange(10, 500)}</span> 赞</div>
<div class="media_tool_meta">在看 <span>{rng.randrange(3, 80)}</span></div></div>
<div id="js_pc_qr_code" class="qr_code_pc_outer"><img src="/mp/qrcode?scene=10000004">\
<p>微信扫一扫<br>关注该公众号</p></div>
</div>
<div class="rich_media_area_extra"><div class="discuss_container" id="js_cmt_area">\
<div class="discuss_title">精选留言</div>
<ul class="discuss_list">
{comments}
</ul></div></div>
</div>
<script>
(function(){{ var c = document.getElementById("js_content"); if (c) {{ c.style.visibility = "visible"; }} }})();
</script>
</body>
</html>
"""


def taiwan(page: Page, charset: str) -> str:
    t, rng = page.text, page.rng
    body = render_blocks(
        page.blocks,
        paragraph=lambda s: f"<p>{esc(s)}</p>",
        heading=lambda s: f"<h3>{esc(s)}</h3>",
        figure=lambda cap, src: (
            f'<figure><img src="{src}" alt="{esc(cap)}"><figcaption>{esc(cap)}</figcaption></figure>'
        ),
    )
    extend = page.headlines(4, EXTRA_HEADLINES_TRADITIONAL)
    popular = page.headlines(8, EXTRA_HEADLINES_TRADITIONAL)
    comments = "\n".join(
        f'<div class="msg"><span class="msg-name">{esc(u)}</span><span class="msg-time">{w}</span><p>{esc(c)}</p></div>'
        for u, w, c in page.comments(rng.randrange(2, 5), COMMENTS_TRADITIONAL)
    )
    return f"""<!DOCTYPE html>
<html lang="zh-Hant-TW">
<head>
{charset}
<title>{esc(t.title)} | 財經 | 寶島財經網</title>
<meta name="description" content="{esc(page.blocks[0].items[0][:60])}">
<link rel="stylesheet" href="/css/story.css">
<style>.story_body p{{font-size:18px;line-height:1.8;margin-bottom:20px}}.story_tags a{{margin-right:8px}}</style>
<script async src="https://ads.example.net/tag/js/gpt.js"></script>
<script>window.dataLayer = window.dataLayer || []; dataLayer.push({{"article_id": "{rng.randrange(10**6, 10**7)}\
", "section": "財經"}});</script>
</head>
<body>
<div id="header"><div class="logo"><a href="/">寶島財經網</a></div>
<ul class="menu"><li><a href="/news/index">即時</a></li><li><a href="/news/stock">股市</a></li><li>\
<a href="/news/house">房市</a></li>
<li><a href="/news/tax">稅務</a></li><li><a href="/news/world">國際</a></li><li><a href="/news/industry">產業</a></li>
<li><a href="/news/money">理財</a></li></ul><div class="member"><a href="/member/login">會員登入</a></div></div>
<div id="container">
<div class="breadcrumb"><a href="/">首頁</a> &gt; <a href="/news/tax">稅務</a> &gt; 稅務新聞</div>
<div id="story_main">
<h1 class="story_title">{esc(t.title)}</h1>
<div class="story_info"><span class="story_date">{t.date.replace("-", "/")}</span>
<span class="story_author">{esc(t.source)} {esc(t.author)}</span></div>
<div class="story_share"><a href="javascript:;" class="fb">分享</a> <a href="javascript:;" class="line">LINE</a>
<a href="javascript:;" class="copy">複製連結</a> <a href="javascript:;" class="font">字級</a></div>
<div class="story_body" id="story_body_content">
{body}
<div class="story_extend"><h4>延伸閱讀</h4><ul>
{"".join(f'<li><a href="/news/story/{k}">{esc(h)}</a></li>' for h, k in extend)}
</ul></div>
</div>
<div class="story_tags">標籤：<a href="/tag/稅">稅務</a><a href="/tag/財政部">財政部</a></div>
<div class="story_subscribe">看更多財經新聞，請訂閱寶島財經網電子報 <a href="/subscribe">立即訂閱</a></div>
<div id="story_comment"><h4>讀者留言</h4>
{comments}
</div>
</div>
<div id="sidebar"><div class="popular"><h4>熱門新聞</h4><ol>
{"".join(f'<li><a href="/news/story/{k}">{esc(h)}</a></li>' for h, k in popular)}
</ol></div><div class="ad-box"><div id="div-gpt-ad-300x600"></div></div></div>
</div>
<div id="footer"><p><a href="/about">關於我們</a> | <a href="/privacy">隱私權政策</a> | <a href="/terms">服務條款</a> |
<a href="/contact">聯絡我們</a></p><p>本網站內容未經授權不得轉載 &copy; 2024 寶島財經網 版權所有</p></div>
</body>
</html>
"""


LAYOUTS: dict[str, tuple[Callable[[Page, str], str], str, str]] = {
    # layout: (renderer, URL of an article (key substituted), which <meta> form the site uses)
    "portal": (portal, "https://finance.huacai.example/roll/2024-05-10/doc-{key}.shtml", "meta"),
    "gov": (gov, "https://jiangdong.tax.example/art/2024/5/10/art_5521_{key}.html", "http-equiv"),
    "finance": (finance, "https://finance.dongfang.example/a/2024051{key}.html", "http-equiv"),
    "magazine": (magazine, "https://www.guanchao.example/article/{key}.html", "meta"),
    "wechat": (wechat, "https://mp.weixin.example/s/{key}", "meta"),
    "taiwan": (taiwan, "https://news.baodao.example/news/story/7238/{key}", "meta"),
}


def declaration(encoding: str, how: str) -> tuple[str, str | None, str]:
    """(Content-Type header, charset the page's <meta> names or None, which <meta> form is forced or "")."""
    if how == "both":
        return f"text/html; charset={encoding}", encoding, ""
    if how == "header":
        return f"text/html; charset={encoding}", None, ""
    if how in ("meta", "http-equiv"):
        return "text/html", encoding, how if how == "http-equiv" else ""
    if how == "none":
        return "text/html", None, ""
    kind, *names = how.split(":")
    if kind == "lie-header":
        return f"text/html; charset={names[0]}", encoding, ""
    if kind == "lie-meta":
        return "text/html", names[0], ""
    if kind == "lie-both":
        return f"text/html; charset={names[0]}", names[1], ""
    raise ValueError(how)


def build(out: Path) -> dict[str, dict[str, str]]:
    pages_dir = out / "pages"
    pages_dir.mkdir(parents=True, exist_ok=True)
    truth: dict[str, dict[str, str]] = {}
    everything = read_texts()
    for texts in ([t for t in everything if t.key.startswith("zh")], [t for t in everything if t.key.startswith("tw")]):
        for text in texts:
            layout, encoding, how = PLAN[text.key]
            render, url_pattern, meta_form = LAYOUTS[layout]
            content_type, meta_label, forced_form = declaration(encoding, how)
            charset = meta_charset(meta_label, forced_form or meta_form)
            blocks = parse_body(text.body)
            url = url_pattern.format(key=text.key)
            page = Page(text, blocks, url, random.Random(text.key), texts)
            document = render(page, charset)
            data = document.encode(CODECS[encoding])  # strict: a character the encoding lacks is a bug here
            name = f"{text.key}.html"
            (pages_dir / name).write_bytes(data)
            truth[text.key] = {
                "file": f"pages/{name}",
                "url": url,
                "content_type": content_type,
                "encoding": encoding,
                "layout": layout,
                "declared": how,
                "title": text.title,
                "articleBody": true_text(blocks),
            }
    (out / "ground-truth.json").write_text(
        json.dumps(truth, ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8"
    )
    return truth


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUT
    truth = build(out)
    sizes = [len(item["articleBody"]) for item in truth.values()]
    print(f"{len(truth)} pages in {out}; article text {min(sizes)}-{max(sizes)} characters, {sum(sizes)} in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
