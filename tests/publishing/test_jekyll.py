"""Debian's Jekyll builds archive/site/ without errors, and puts every post where the plain-HTML site does."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest

from aggregator.core.models import Config
from aggregator.core.sanitize import sanitize_html
from aggregator.publishing.site import write_site
from aggregator.store.archive import Archive
from tests.publishing.test_site import HOSTILE_TITLES
from tests.sitehelpers import cst, make_entry, store

pytestmark = pytest.mark.skipif(
    shutil.which("jekyll") is None, reason="jekyll is not installed (apt-get install jekyll)"
)


def test_jekyll_builds_every_post_and_category_page(make_config: Callable[..., Config], tmp_path: Path) -> None:
    config = make_config(
        [{"url": "https://source.example.com/feed.xml", "category": "news"}],
        categories={"news": {"title": "新闻"}, "empty": {"title": "Nothing yet"}},
        site_timezone="Asia/Shanghai",
    )
    entries = [make_entry(title, f"h{n}", cst(2024, 3, 1, 12, 0, n)) for n, title in enumerate(HOSTILE_TITLES)]
    # Late evening in New York is the next day in Shanghai: the URL date follows the site's zone.
    new_york = timezone(-timedelta(hours=5))
    entries.append(make_entry("Late edition", "late", datetime(2024, 3, 1, 23, 30, tzinfo=new_york)))
    entries.append(
        make_entry("{{ liquid }} {% if %}", "liquid", cst(2024, 3, 2, 8, 0, 0), "<p>{{ x }} {% endif %}</p>")
    )
    store(config, entries, "news")
    with Archive.open(config.settings.database_path) as archive:
        write_site(config, archive)
    site = config.settings.archive_dir / "site"
    out = tmp_path / "_site"
    result = subprocess.run(
        ["jekyll", "build", "--source", str(site), "--destination", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error" not in (result.stdout + result.stderr).lower()
    public = config.settings.archive_dir / "public"
    expected = {p.relative_to(public) for p in public.rglob("*.html") if "page" not in p.relative_to(public).parts}
    built = {p.relative_to(out) for p in out.rglob("*.html")}
    assert expected == built
    assert (site / "_posts" / "2024-03-01-late-edition.md").is_file()  # the file name: the source's own day
    assert (out / "news" / "2024" / "03" / "02" / "late-edition.html").is_file()
    liquid = next((out / "news" / "2024" / "03" / "02").glob("liquid*.html")).read_text(encoding="utf-8")
    assert "{{ x }} {% endif %}" in _Page(liquid).text
    for title in ("新闻", "Nothing yet"):
        assert title in (out / "index.html").read_text(encoding="utf-8")
    assert "Late edition" in (out / "category" / "news.html").read_text(encoding="utf-8")


class _Page(HTMLParser):
    """The text of a page (white space folded) and every attribute of its elements."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.attributes: list[tuple[str, str, str]] = []
        self.tags: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [(tag, name, value or "") for name, value in attrs]

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)

    @property
    def text(self) -> str:
        return " ".join("".join(self.chunks).split())


# Entry text that kramdown would read as Markdown if it were written into the post as it is.
MARKDOWN_IN_ENTRIES = {
    "links": "[x](javascript:alert(1)) and ![i](javascript:alert(2)) <https://example.com/>",
    "inline": "<em>hi</em> [click](javascript:alert(3))",
    "reference": "[a][r]\n\n[r]: javascript:alert(4)",
    "attributes": "hello\n{: onmouseover='alert(5)' style='position:fixed'}",
    "options": '{::options parse_block_html="true" /}\n\n<p>[y](javascript:alert(6))</p>',
    "typography": 'a -- b --- c ... "quoted" it\'s *not* _emphasis_ `code` $$x$$ ~~struck~~ a|b ^c',
    "lists": "- not a list\n+ nor this\n1. not numbered\n# not a heading\n: no definition\n===",
    "indented": "<p>first</p>\n\n    <p>indented, not code</p>\n\n\tnor this",
    "break": "one  \ntwo",
    "attrnewline": '<abbr title="x\n\n[a](javascript:alert(7))">y</abbr>',
    "afterblock": "<p>a</p>    not code",
    "afterblock2": "<p>a</p>1. not numbered",
    "attrnewline2": '<b title="x\n# [a](javascript:alert(8))">y</b>',
}


def test_jekyll_shows_entry_text_as_text_never_as_markdown(make_config: Callable[..., Config], tmp_path: Path) -> None:
    # The post file is kramdown: an entry's text must reach the page as the same text, with no link,
    # attribute, code block or typographic change made of it (public/ shows what was stored).
    config = make_config([{"url": "https://source.example.com/feed.xml", "category": "news"}])
    entries = [
        make_entry(name, name, cst(2024, 3, 1, 12, 0, n), sanitize_html(html, "https://source.example.com/"))
        for n, (name, html) in enumerate(MARKDOWN_IN_ENTRIES.items())
    ]
    store(config, entries, "news")
    with Archive.open(config.settings.database_path) as archive:
        write_site(config, archive)
    out = tmp_path / "_site"
    result = subprocess.run(
        ["jekyll", "build", "--source", str(config.settings.archive_dir / "site"), "--destination", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for entry in entries:
        [built] = (out / "news" / "2024" / "03" / "01").glob(f"{entry.title}.html")
        page = _Page(built.read_text(encoding="utf-8"))
        # The same characters (kramdown may put text after a closing block tag in a paragraph of its own).
        assert _Page(entry.content).text.replace(" ", "") in page.text.replace(" ", ""), entry.title
        for tag, name, value in page.attributes:
            assert not name.startswith("on") and name != "style", (entry.title, tag, name)
            assert name not in ("href", "src") or "javascript" not in value.lower(), (entry.title, tag, name, value)
        assert not {"pre", "code", "br", "hr", "li", "dd", "h2", "em"} & set(page.tags) or entry.title == "inline"
