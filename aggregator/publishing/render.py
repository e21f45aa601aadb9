"""Pure rendering for the static archive: Jinja2 templates in, text out; the only module importing jinja2.

Templates live in `aggregator/templates/`; an operator's `templates_dir` (settings) holds files of the same
names that win over the bundled ones. `jekyll/*` render the Jekyll tree (posts in the exact shape of the
archive's sample post), `html/*` the plain-HTML site. Files listed in VERBATIM are Liquid templates for
Jekyll itself: they are copied as they are, never run through Jinja.
"""

from __future__ import annotations

import functools
import hashlib
import html
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2

from aggregator.core.errors import AggregatorError

# Jekyll's own Liquid templates: template name -> file under site/, copied without Jinja.
VERBATIM = {
    "jekyll/_layouts/default.html": "_layouts/default.html",
    "jekyll/_layouts/post.html": "_layouts/post.html",
    "jekyll/_layouts/category.html": "_layouts/category.html",
    "jekyll/index.html": "index.html",
    "html/style.css": "_includes/style.css",
}

# YAML 1.1 (Jekyll's Psych) and 1.2 words that a plain scalar would turn into a bool, null or number.
_YAML_SPECIAL_WORDS = re.compile(
    r"^(?:y|yes|n|no|true|false|on|off|null|~|\.inf|-\.inf|\+\.inf|\.nan|=|<<)$", re.IGNORECASE
)
_YAML_NUMBER_LIKE = re.compile(r"^[-+.]?[0-9]")
_SIMPLE_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}


# --- YAML front matter ---------------------------------------------------------------------------------


def _yaml_printable(code: int) -> bool:
    """The YAML spec's printable set, minus line separators a parser would fold (NEL, LS, PS) and the BOM."""
    if code in (0x85, 0x2028, 0x2029, 0xFEFF):
        return False
    return code == 0x09 or 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or code >= 0x10000


def yaml_quote(text: str) -> str:
    """`text` as a YAML double-quoted scalar that any YAML parser reads back to exactly `text`."""
    out = []
    for char in text:
        code = ord(char)
        if char in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[char])
        elif _yaml_printable(code):
            out.append(char)
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def _plain_safe(text: str) -> bool:
    """True when `text` can stand unquoted as a YAML value, read back as the same string by any parser."""
    if not text or _YAML_SPECIAL_WORDS.match(text) or _YAML_NUMBER_LIKE.match(text):
        return False
    # Letters, marks, digits and inner hyphens only: no indicator, separator or space can sneak in.
    return all(ch == "-" or ch.isalnum() for ch in text) and text[0].isalpha() and not text.endswith("-")


def yaml_scalar(text: str) -> str:
    """Plain when that is safe (as the sample's `categories: zhongguoshuiwubao`), else double-quoted."""
    return text if _plain_safe(text) else yaml_quote(text)


def yaml_tags(tags: Sequence[str]) -> str:
    """The sample's bare `tags: 中国税务报新闻` for one simple tag; a flow list otherwise.

    Jekyll splits a string `tags:` value on whitespace, so a tag with a space must go in a list.
    """
    if len(tags) == 1 and _plain_safe(tags[0]):
        return tags[0]
    return "[" + ", ".join(yaml_quote(tag) for tag in tags) + "]"


def jekyll_date(value: datetime) -> str:
    """`2022-03-16 08:54:16 +0800`: the source's own offset, as the sample has it."""
    return value.strftime("%Y-%m-%d %H:%M:%S %z")


# A post's body is HTML inside a kramdown (Markdown) file. kramdown reads Markdown in any text that is not
# inside a raw HTML block, so an entry's "[x](javascript:...)" or "{: onclick=...}" would become live markup,
# and indented lines code blocks. Text is therefore written so kramdown finds nothing to read in it: the
# characters it acts on become character references, which HTML reads as the same characters.
_HTML_TAG = re.compile(r'<(?:[^>"]|"[^"]*")*>')  # the sanitiser quotes every attribute with "
# Characters kramdown acts on anywhere in a line; runs of dashes and dots become typographic dashes and
# ellipses, quotes "smart" ones.
_MARKDOWN_ANYWHERE = re.compile(r"""[\\`*_{}\[\]$^~|#"']|-{2,}|\.{3,}""")
# The same, with a lookahead so the regex engine skips to a candidate character (2.3x faster), and the
# substrings whose absence proves there is nothing to do (str.__contains__ is far cheaper than a regex).
_MARKDOWN_ANYWHERE_FAST = re.compile(r"""(?=[-.\\`*_{}\[\]$^~|#"'])(?:[\\`*_{}\[\]$^~|#"']|-{2,}|\.{3,})""")
_MARKDOWN_NEEDLES = (*"\\`*_{}[]$^~|#\"'", "--", "...")
# What a line may start with: indentation (four columns make a code block) and list, heading-underline
# and definition markers.
_LINE_START = re.compile(r"(\n|\A)([ \t]*)([-+=:]|\d+[.)])?")
_HARD_BREAK = re.compile(r" {2,}\n")  # two spaces before a line break are a <br>
_BLOCK_TAG = re.compile(
    r"</?(?:address|article|aside|blockquote|body|center|dd|details|div|dl|dt|figcaption|figure|footer|form|h[1-6]"
    r"|header|hgroup|hr|html|iframe|legend|li|listing|menu|nav|ol|p|pre|section|summary|table|tbody|td|tfoot|th"
    r"|thead|tr|ul|video|audio|caption|col|colgroup|fieldset|main|noscript|picture|source)[\s/>]",
    re.IGNORECASE,
)
_PRE_OPEN = re.compile(r"<(?:pre|textarea)[\s>]", re.IGNORECASE)
_PRE_CLOSE = re.compile(r"</(?:pre|textarea)\s*>", re.IGNORECASE)


def _reference(text: str) -> str:
    return "".join(f"&#{ord(char)};" for char in text)


def _inert_characters(text: str) -> str:
    for needle in _MARKDOWN_NEEDLES:
        if needle in text:
            return _MARKDOWN_ANYWHERE_FAST.sub(lambda match: _reference(match.group()), text)
    return text


def _inert_text(text: str, line_start: bool, preformatted: bool) -> str:
    text = _inert_characters(text)
    if not line_start and "\n" not in text:
        return text  # _LINE_START matches only at a line start, and leaves it alone after a tag

    def at_line_start(match: re.Match[str]) -> str:
        newline, indent, marker = match.groups()
        if not newline and not line_start:
            return match.group()  # after a tag on the same line: not where kramdown looks for markers
        if len(indent.expandtabs(4)) >= 4:
            # Inside <pre> the white space is kept (its first character as a reference); elsewhere HTML
            # folds it into one space anyway.
            indent = _reference(indent[0]) + indent[1:] if preformatted else " "
        if marker:
            marker = marker[:-1] + _reference(marker[-1])
        return newline + indent + (marker or "")

    text = _LINE_START.sub(at_line_start, text)
    return text if preformatted or "  \n" not in text else _HARD_BREAK.sub(" \n", text)


def markdown_inert(html: str) -> str:
    """Sanitised HTML that kramdown passes through as HTML: no Markdown in its text (links, emphasis,
    attribute lists, math, code blocks, typographic quotes and dashes), tags untouched. A browser shows
    the same text; text with none of those characters (like the sample post's) is unchanged."""
    parts: list[str] = []
    position = 0
    preformatted = 0
    line_start = True
    for tag in _HTML_TAG.finditer(html):
        if tag.start() > position:
            text = html[position : tag.start()]
            parts.append(_inert_text(text, line_start, preformatted > 0))
        # A line break inside a tag (an attribute value) would let kramdown end its paragraph there and read
        # the rest of the attribute as Markdown; after a block-level tag kramdown reads a new block.
        parts.append(tag.group().replace("\r", "&#13;").replace("\n", "&#10;"))
        if _PRE_OPEN.match(tag.group()):
            preformatted += 1
        elif _PRE_CLOSE.match(tag.group()):
            preformatted = max(0, preformatted - 1)
        line_start = _BLOCK_TAG.match(tag.group()) is not None
        position = tag.end()
    if position < len(html):
        parts.append(_inert_text(html[position:], line_start, preformatted > 0))
    return "".join(parts)


def markdown_label(text: str) -> str:
    """Text safe inside a Markdown link label, on one line: HTML-escaped, and no Markdown in it."""
    return _inert_characters(html.escape(" ".join(text.split()), quote=False))


def web_url(url: str) -> str:
    """`url` when it is an http(s) URL a page may link to, else "" (no javascript: or data: links)."""
    return url if urlsplit(url).scheme.lower() in ("http", "https") else ""


def autolink_url(url: str) -> str:
    """A URL safe inside Markdown's `<...>` autolink: no spaces, angle brackets or line breaks."""
    return quote(url, safe="!#$%&'()*+,/:;=?@[]~-._")


# --- URLs inside the plain-HTML site -------------------------------------------------------------------


def relative_url(from_page: str, to_path: str) -> str:
    """A percent-encoded relative link from one site path to another (both relative to the site root).

    Relative links make the site work opened from disk and served under any path. An absolute URL (the
    republished feeds', which are not inside the site folder on disk) is returned as it is, so templates
    link every target through the same `href`.
    """
    if ":" in to_path and urlsplit(to_path).scheme in ("http", "https"):
        return to_path
    return _relative_link(posixpath.dirname(from_page) or ".", to_path)


@functools.lru_cache(maxsize=4096)
def _relative_link(start: str, to_path: str) -> str:
    """posixpath.relpath(to_path, start), quoted; cached (a post's links differ only by its day folder),
    and computed on the strings alone when neither path climbs or is absolute (relpath made each an
    absolute path: a getcwd call per link, five per page)."""
    if not to_path or start.startswith("/") or to_path.startswith("/") or ".." in start or ".." in to_path:
        relative = posixpath.relpath(to_path, start)
    else:
        from_parts = [part for part in start.split("/") if part and part != "."]
        to_parts = [part for part in to_path.split("/") if part and part != "."]
        common = 0
        for a, b in zip(from_parts, to_parts, strict=False):
            if a != b:
                break
            common += 1
        relative = "/".join([".."] * (len(from_parts) - common) + to_parts[common:]) or "."
    return quote(relative, safe="/")


# --- the renderer --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SiteInfo:
    title: str
    language: str
    base_url: str  # https://host/path/
    home_url: str  # //host/path/ : the scheme-less form the sample's back links use


_CODE = Path(__file__).read_bytes()  # read once: the daemon fingerprints the renderer on every publish


class Renderer:
    """Renders the site's templates; `override_dir` files win over the bundled ones."""

    def __init__(self, override_dir: Path | None = None) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if override_dir is not None:
            loaders.append(jinja2.FileSystemLoader(str(override_dir)))
        loaders.append(jinja2.PackageLoader("aggregator", "templates"))
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            # HTML pages escape every value; Jekyll files quote through the YAML filters instead.
            autoescape=lambda name: bool(name) and str(name).startswith("html/"),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=False,  # the sample post ends without a newline
            trim_blocks=True,
            lstrip_blocks=True,
            # One Renderer serves one publish: no stat of the template's file on every page (80,000 of
            # them in a first build); a changed template is seen by the next publish's Renderer.
            auto_reload=False,
        )
        self._templates: dict[str, jinja2.Template] = {}
        self.env.filters.update(
            yaml_quote=yaml_quote,
            yaml_scalar=yaml_scalar,
            yaml_tags=yaml_tags,
            jekyll_date=jekyll_date,
            markdown_label=markdown_label,
            markdown_inert=markdown_inert,
            autolink_url=autolink_url,
            web_url=web_url,
        )

    def render(self, name: str, **context: Any) -> str:
        try:
            template = self._templates.get(name)
            if template is None:
                template = self._templates[name] = self.env.get_template(name)
            return template.render(**context)
        except jinja2.TemplateError as error:
            raise SiteTemplateError(f"template {name}: {error}") from None
        except Exception as error:  # an operator's template doing arithmetic on a date, dividing by zero...
            raise SiteTemplateError(f"template {name}: {type(error).__name__}: {error}") from None

    def fingerprint(self) -> str:
        """A hash of every template as this renderer sees it (an operator's own included) and of this
        module's code: when it changes, pages rendered before may differ from what it would render now."""
        digest = hashlib.sha256(_CODE)
        for name in sorted(self.env.list_templates()):
            digest.update(f"\x00{name}\x00{self.source(name)}".encode())
        return digest.hexdigest()

    def source(self, name: str) -> str:
        """A template's text as it is (for Jekyll's own Liquid layouts)."""
        loader = self.env.loader
        assert loader is not None
        try:
            return loader.get_source(self.env, name)[0]
        except jinja2.TemplateNotFound:
            raise SiteTemplateError(f"template {name} not found") from None


class SiteTemplateError(AggregatorError):
    """A site template is missing or broken (often an operator's override): one line naming it."""


@dataclass(frozen=True, slots=True)
class PostView:
    """Everything a post's templates need about one entry."""

    entry_id: str
    title: str
    published: datetime
    category: str  # slug
    category_title: str
    tags: tuple[str, ...]
    body: str  # sanitised HTML, inserted as it is
    link: str
    slug: str
    site_time: datetime  # `published` in the site's time zone: Jekyll dates URLs in it

    @property
    def post_file(self) -> str:
        """The Jekyll source file: `_posts/YYYY-MM-DD-<slug>.md`, the date in the source's own offset."""
        return f"_posts/{self.published:%Y-%m-%d}-{self.slug}.md"

    @property
    def path(self) -> str:
        """Path under the site root, as Jekyll permalink `/:categories/:year/:month/:day/:title:output_ext` makes it."""
        return f"{self.category}/{self.site_time:%Y/%m/%d}/{self.slug}.html"


def render_jekyll_post(renderer: Renderer, post: PostView, site: SiteInfo) -> str:
    """The `_posts` file, in the exact shape of the archive's sample post."""
    return renderer.render(
        "jekyll/post.md",
        post=post,
        site=site,
        home_url=site.home_url,
        category_url=f"{site.home_url}category/{post.category}.html",
    )
