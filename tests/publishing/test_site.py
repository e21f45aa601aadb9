"""The static archive on disk: the sample through the real pipeline, hostile titles, incremental writes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, urljoin

import feedparser
import pytest
import yaml
from pytest_httpserver import HTTPServer

from aggregator.cli.demo import DEMO_CONFIG, serve_samples
from aggregator.configuration.load import load_config
from aggregator.core.models import Config
from aggregator.pipeline import update_feeds
from aggregator.publishing.feeds import publish_feeds
from aggregator.publishing.render import SiteTemplateError
from aggregator.publishing.site import write_site
from aggregator.store.archive import Archive
from tests.conftest import SEED
from tests.sitehelpers import cst, make_entry, store, tree_digest

SAMPLE_POST = "_posts/2022-03-16-四维-发力-确保征管改革见成效.md"


def demo_config(tmp_path: Path, base: str) -> Config:
    text = DEMO_CONFIG.format(base=base).replace(
        "base_url: https://archive.example.org/", "base_url: https://finews.withounder.com/"
    )
    path = tmp_path / "feeds.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


@pytest.fixture
def sample_site(tmp_path: Path) -> Config:
    """The bundled sample feeds fetched over HTTP into a real archive, then written as a site."""
    with serve_samples() as base:
        config = demo_config(tmp_path, base)
        with Archive.open(config.settings.database_path) as archive:
            asyncio.run(update_feeds(config, list(config.feeds), archive))
            write_site(config, archive)
    return config


def test_the_sample_article_comes_out_exactly_as_the_seed(sample_site: Config) -> None:
    post = sample_site.settings.archive_dir / "site" / SAMPLE_POST
    assert post.read_bytes() == SEED.read_bytes()


def test_plain_html_site_has_every_page(sample_site: Config) -> None:
    public = sample_site.settings.archive_dir / "public"
    home = (public / "index.html").read_text(encoding="utf-8")
    assert '<meta charset="utf-8">' in home and 'type="application/atom+xml"' in home
    assert 'href="category/zhongguoshuiwubao.html"' in home and "中国税务报新闻" in home
    category = (public / "category" / "zhongguoshuiwubao.html").read_text(encoding="utf-8")
    post_path = "zhongguoshuiwubao/2022/03/16/四维-发力-确保征管改革见成效.html"
    assert f'href="../{quote(post_path)}"' in category
    post = (public / post_path).read_text(encoding="utf-8")
    assert "<h1>“四维”发力 确保征管改革见成效</h1>" in post
    assert 'href="../../../../category/zhongguoshuiwubao.html">返回中国税务报新闻</a>' in post
    assert 'href="http://finews.zning.xyz/html_News/NewsShare.html?infoCode=NW202203162311033675"' in post
    # Nothing is loaded from elsewhere; only the feed links (which load nothing) are absolute.
    loading = [
        line for line in post.splitlines() if ("<link" in line and 'rel="alternate"' not in line) or "<script" in line
    ]
    assert "http" not in "".join(loading)


def test_second_run_writes_nothing_and_rebuild_is_byte_identical(sample_site: Config) -> None:
    root = sample_site.settings.archive_dir
    before = tree_digest(root / "site") | tree_digest(root / "public")
    with Archive.open(sample_site.settings.database_path) as archive:
        assert write_site(sample_site, archive).written == 0
        assert write_site(sample_site, archive, entry_ids=set()).written == 0
        rebuilt = write_site(sample_site, archive, rebuild=True)
    assert rebuilt.written == 0
    assert tree_digest(root / "site") | tree_digest(root / "public") == before
    # Even after deleting everything, a rebuild gives the same bytes.
    for path in sorted((root / "public").rglob("*.html"), reverse=True):
        path.unlink()
    with Archive.open(sample_site.settings.database_path) as archive:
        write_site(sample_site, archive, rebuild=True)
    assert tree_digest(root / "site") | tree_digest(root / "public") == before


def test_new_entry_writes_its_post_and_the_pages_listing_it(make_config: Callable[..., Config]) -> None:
    config = make_config([{"url": "https://source.example.com/feed.xml", "category": "news"}], site_page_size=2)
    store(config, [make_entry(f"Old {n}", f"k{n}", datetime(2024, 1, n + 1, tzinfo=UTC)) for n in range(5)], "news")
    with Archive.open(config.settings.database_path) as archive:
        write_site(config, archive)
    new_ids = store(config, [make_entry("Fresh news", "fresh", datetime(2024, 2, 1, tzinfo=UTC))], "news")
    with Archive.open(config.settings.database_path) as archive:
        report = write_site(config, archive, entry_ids=set(new_ids))
    assert sorted(report.written_paths) == [
        "public/category/news.html",
        "public/category/news/page/3.html",  # page 3 (entries 5-6) gains the new entry
        "public/index.html",
        "public/news/2024/02/01/fresh-news.html",
        "site/_posts/2024-02-01-fresh-news.md",
    ]
    assert report.posts_written == 2


def test_new_revision_rewrites_the_post_and_keeps_its_url(make_config: Callable[..., Config]) -> None:
    config = make_config([{"url": "https://source.example.com/feed.xml", "category": "news"}])
    store(config, [make_entry("First title", "k", cst(2024, 3, 1, 9, 0, 0))], "news")
    with Archive.open(config.settings.database_path) as archive:
        write_site(config, archive)
    changed = store(config, [make_entry("Edited title", "k", cst(2024, 3, 1, 9, 0, 0), "<p>v2</p>")], "news")
    with Archive.open(config.settings.database_path) as archive:
        report = write_site(config, archive, entry_ids=set(changed))
    post = config.settings.archive_dir / "site" / "_posts" / "2024-03-01-first-title.md"
    assert "site/_posts/2024-03-01-first-title.md" in report.written_paths
    assert yaml.safe_load(post.read_text(encoding="utf-8").split("---\n")[1])["title"] == "Edited title"
    assert "<p>v2</p>" in post.read_text(encoding="utf-8")


HOSTILE_TITLES = [
    "../../etc/passwd",
    "/absolute/../../x",
    "x" * 2000,
    "长" * 2000,
    "!!!???...///",
    "title: [not, a, list] & *alias !tag %x @y `z`",
    "---\nlayout: evil\n---",
    "quotes \" and \\ backslash ' and\ttab\r\nnewline",
    "CON",
    "{{ site.title }} {% raw %}",
    "",
]


def test_hostile_titles_make_safe_files_that_parse_back(make_config: Callable[..., Config]) -> None:
    config = make_config([{"url": "https://source.example.com/feed.xml", "category": "news"}])
    entries = [make_entry(title, f"h{n}", cst(2024, 3, 1, 12, 0, n)) for n, title in enumerate(HOSTILE_TITLES)]
    store(config, entries, "news")
    with Archive.open(config.settings.database_path) as archive:
        report = write_site(config, archive)
    root = config.settings.archive_dir.resolve()
    for written in report.written_paths:
        path = (root / written).resolve()
        assert path.is_relative_to(root / "site") or path.is_relative_to(root / "public")
        assert len(path.name.encode("utf-8")) <= 200
    posts = sorted((root / "site" / "_posts").glob("*.md"))
    assert len(posts) == len(HOSTILE_TITLES)
    titles = []
    for post in posts:
        text = post.read_text(encoding="utf-8")
        titles.append(yaml.safe_load(text[4 : text.index("\n---\n", 4)])["title"])
    assert sorted(titles) == sorted(HOSTILE_TITLES)
    assert not (root.parent / "etc").exists()


def test_operator_templates_override_the_bundled_ones(make_config: Callable[..., Config], tmp_path: Path) -> None:
    templates = tmp_path / "my-templates" / "jekyll"
    templates.mkdir(parents=True)
    (templates / "post.md").write_text("{{ post.title }} | {{ home_url }}", encoding="utf-8")
    config = make_config(
        [{"url": "https://source.example.com/feed.xml", "category": "news"}], templates_dir="my-templates"
    )
    store(config, [make_entry("Hello", "k", cst(2024, 3, 1, 9, 0, 0))], "news")
    with Archive.open(config.settings.database_path) as archive:
        write_site(config, archive)
    post = config.settings.archive_dir / "site" / "_posts" / "2024-03-01-hello.md"
    assert post.read_text(encoding="utf-8") == "Hello | //archive.example.org/"
    # A template that fails while rendering is one line naming it, not a traceback.
    (templates / "post.md").write_text("{{ post.published + 1 }}", encoding="utf-8")
    with Archive.open(config.settings.database_path) as archive, pytest.raises(SiteTemplateError) as raised:
        write_site(config, archive)
    assert str(raised.value).startswith("template jekyll/post.md: TypeError: unsupported operand")


def test_removed_feed_entries_stay_with_their_category_tags(tmp_path: Path) -> None:
    with serve_samples() as base:
        config = demo_config(tmp_path, base)
        with Archive.open(config.settings.database_path) as archive:
            asyncio.run(update_feeds(config, list(config.feeds), archive))
    text = config.path.read_text(encoding="utf-8")
    config.path.write_text(text.split("feeds:")[0] + "feeds: []\n", encoding="utf-8")
    config = load_config(config.path)
    with Archive.open(config.settings.database_path) as archive:
        write_site(config, archive)
    assert (config.settings.archive_dir / "site" / SAMPLE_POST).read_bytes() == SEED.read_bytes()


def test_slug_cache_gives_the_same_slugs_as_computing_them(make_config: Callable[..., Config]) -> None:
    """Colliding titles on one day: the cached run, a run without cache and a run with a corrupt cache
    all name the posts the same way, and a new colliding entry never takes an older one's slug."""
    config = make_config([{"url": "https://source.example.com/feed.xml", "category": "news"}])
    day = datetime(2024, 1, 1, 12, tzinfo=UTC)
    store(config, [make_entry("Same title", f"k{n}", day) for n in range(3)], "news")
    posts = config.settings.archive_dir / "site" / "_posts"
    cache = config.settings.archive_dir / "site" / ".post-slugs.json"
    with Archive.open(config.settings.database_path) as archive:
        write_site(config, archive)
        first = sorted(p.name for p in posts.iterdir())
        assert cache.exists() and len(first) == 3
        new_ids = store(
            config, [make_entry("Same title", "k9", day)], "news", fetched_at=datetime(2024, 2, 1, tzinfo=UTC)
        )
        write_site(config, archive, entry_ids=set(new_ids))
        with_cache = sorted(p.name for p in posts.iterdir())
        assert set(first) < set(with_cache) and len(with_cache) == 4
        for damage in (None, b"{not json"):
            if damage is None:
                cache.unlink()
            else:
                cache.write_bytes(damage)
            write_site(config, archive, rebuild=True)
            assert sorted(p.name for p in posts.iterdir()) == with_cache


def test_a_post_whose_date_changes_moves_and_leaves_no_stale_copy(make_config: Callable[..., Config]) -> None:
    """The source re-dates and edits an entry: its post moves to the new date's file, the old file goes
    (Jekyll would otherwise publish the entry twice), and the listings point at the new path."""
    config = make_config([{"url": "https://source.example.com/feed.xml", "category": "news"}])
    store(config, [make_entry("Moving story", "m1", datetime(2024, 1, 5, tzinfo=UTC))], "news")
    posts = config.settings.archive_dir / "site" / "_posts"
    public = config.settings.archive_dir / "public"
    with Archive.open(config.settings.database_path) as archive:
        write_site(config, archive)
        assert [p.name for p in posts.iterdir()] == ["2024-01-05-moving-story.md"]
        edited = make_entry("Moving story", "m1", datetime(2024, 3, 9, tzinfo=UTC), content="<p>corrected</p>")
        changed = store(config, [edited], "news", fetched_at=datetime(2024, 3, 9, tzinfo=UTC))
        report = write_site(config, archive, entry_ids=set(changed))
    assert [p.name for p in posts.iterdir()] == ["2024-03-09-moving-story.md"]
    assert report.removed_paths == [
        "site/_posts/2024-01-05-moving-story.md",
        "public/news/2024/01/05/moving-story.html",
    ]
    assert not (public / "news" / "2024" / "01").exists()  # no empty date folders left behind
    assert (public / "news" / "2024" / "03" / "09" / "moving-story.html").is_file()
    assert "2024/03/09/moving-story.html" in (public / "category" / "news.html").read_text(encoding="utf-8")


def _published_in_news(httpserver: HTTPServer, tmp_path: Path) -> tuple[Config, Config]:
    """A feed archived and published in "news", and the config that moves it to "tech" (not yet applied)."""
    from aggregator.publishing.outputs import publish_outputs
    from tests.conftest import run_update, write_config
    from tests.feeds import item, rss

    httpserver.expect_request("/f").respond_with_data(rss([item(1)]), content_type="application/rss+xml")
    feeds = [{"url": httpserver.url_for("/f"), "category": "news"}]
    categories = {"news": {"title": "News"}, "tech": {"title": "Tech"}}
    config = load_config(write_config(tmp_path, feeds, categories, publish=False, per_host_delay=0))
    run_update(config)
    with Archive.open(config.settings.database_path) as archive:
        publish_outputs(config, archive)
    assert list((config.settings.archive_dir / "public" / "news").rglob("*.html"))
    moved = load_config(write_config(tmp_path, [{**feeds[0], "category": "tech"}], categories, per_host_delay=0))
    return config, moved


def test_a_feed_moved_to_another_category_moves_its_posts(httpserver: HTTPServer, tmp_path: Path) -> None:
    from aggregator.publishing.outputs import publish_outputs
    from tests.conftest import run_update

    config, moved = _published_in_news(httpserver, tmp_path)
    public = config.settings.archive_dir / "public"
    run_update(moved)  # the same body again: not even parsed, yet the entries change category
    with Archive.open(moved.settings.database_path) as archive:
        # What fetch-now publishes after a run that changed no entry: nothing named, yet the move shows.
        publish_outputs(moved, archive, categories=set(), entry_ids=set())
    assert not list((public / "news").rglob("*.html"))
    assert [p.name for p in (public / "tech").rglob("*.html")] == ["item-1.html"]
    assert "item-1.html" in (public / "category" / "tech.html").read_text(encoding="utf-8")
    assert "item-1.html" not in (public / "category" / "news.html").read_text(encoding="utf-8")
    feeds = config.settings.archive_dir / "feeds"
    assert "Item 1" in (feeds / "tech.atom").read_text(encoding="utf-8")
    assert "Item 1" not in (feeds / "news.atom").read_text(encoding="utf-8")


def test_a_publish_alone_shows_a_feed_moved_in_feeds_yaml(httpserver: HTTPServer, tmp_path: Path) -> None:
    from aggregator.publishing.outputs import publish_outputs

    config, moved = _published_in_news(httpserver, tmp_path)
    with Archive.open(moved.settings.database_path) as archive:
        publish_outputs(moved, archive)  # `aggregator publish`: no poll in between
        assert [entry.category for entry in archive.entries()] == ["tech"]
        assert archive.db.execute("SELECT category FROM feeds").fetchall() == [("tech",)]
    public = config.settings.archive_dir / "public"
    assert not list((public / "news").rglob("*.html"))
    assert [p.name for p in (public / "tech").rglob("*.html")] == ["item-1.html"]
    assert "Item 1" in (config.settings.archive_dir / "feeds" / "tech.atom").read_text(encoding="utf-8")
    assert len(httpserver.log) == 1


def test_a_new_category_title_reaches_every_post_without_a_rebuild(make_config: Callable[..., Config]) -> None:
    # Posts show their category's title (and tags, the site's address): a plain publish after the
    # operator changes them renders those posts again, writing only files whose bytes change.
    feeds = [{"url": "https://source.example.com/feed.xml", "category": "news"}]
    config = make_config(feeds, categories={"news": {"title": "Old name"}})
    store(config, [make_entry(f"Post {n}", f"k{n}", cst(2024, 3, n + 1, 9, 0, 0)) for n in range(3)], "news")
    with Archive.open(config.settings.database_path) as archive:
        write_site(config, archive)
    renamed = make_config(feeds, categories={"news": {"title": "New name"}})
    with Archive.open(config.settings.database_path) as archive:
        report = write_site(renamed, archive)
        assert report.posts_written == 6  # three Jekyll posts, three plain-HTML ones
        posts = sorted((config.settings.archive_dir / "site" / "_posts").glob("*.md"))
        assert len(posts) == 3 and all("[返回New name](" in p.read_text(encoding="utf-8") for p in posts)
        assert write_site(renamed, archive).written == 0
        # Fetch-time publishes (only the new entries named) see the change as well.
        store(renamed, [make_entry("Post 3", "k3", cst(2024, 3, 9, 9, 0, 0))], "news")
        changed = make_config(feeds, categories={"news": {"title": "Newer name", "tags": ["t1"]}})
        report = write_site(changed, archive, entry_ids={make_entry("Post 3", "k3", cst(2024, 3, 9, 9, 0, 0)).id})
        assert report.posts_written == 8
        assert all("tags: t1" in p.read_text(encoding="utf-8") for p in posts)


def test_an_untitled_entry_gets_a_visible_clickable_title(make_config: Callable[..., Config]) -> None:
    config = make_config([{"url": "https://source.example.com/feed.xml", "category": "news"}])
    store(config, [make_entry("", "untitled", cst(2024, 3, 1, 9, 0, 0))], "news")
    with Archive.open(config.settings.database_path) as archive:
        write_site(config, archive)
    public = config.settings.archive_dir / "public"
    [post] = (public / "news" / "2024" / "03" / "01").glob("*.html")
    assert "<h1>(untitled)</h1>" in post.read_text(encoding="utf-8")
    for listing in (public / "index.html", public / "category" / "news.html"):
        assert '">(untitled)</a>' in listing.read_text(encoding="utf-8"), listing
    # The Jekyll post keeps the source's (empty) title; its layouts show the same stand-in.
    [source] = (config.settings.archive_dir / "site" / "_posts").glob("*.md")
    assert 'title: ""' in source.read_text(encoding="utf-8")


class _FeedLinks(HTMLParser):
    """Every feed a page links to: its <link rel="alternate"> tags and any <a> to an Atom document."""

    def __init__(self) -> None:
        super().__init__()
        self.head: list[str] = []
        self.visible: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        href = found.get("href") or ""
        if tag == "link" and found.get("rel") == "alternate":
            self.head.append(href)
        elif tag == "a" and href.endswith(".atom"):
            self.visible.append(href)


def test_feed_links_reach_the_feeds_under_a_base_url_with_a_path(make_config: Callable[..., Config]) -> None:
    base = "https://example.org/news-archive/"
    config = make_config(
        [{"url": "https://source.example.com/feed.xml", "category": "tech"}], base_url=base, site_page_size=2
    )
    store(config, [make_entry(f"Post {n}", f"k{n}", cst(2024, 3, n + 1, 9, 0, 0)) for n in range(3)], "tech")
    with Archive.open(config.settings.database_path) as archive:
        write_site(config, archive)
    public = config.settings.archive_dir / "public"
    everything, tech = f"{base}feeds/all.atom", f"{base}feeds/tech.atom"
    # page -> (the feeds its <head> names, the feeds it links to visibly), at every depth of the site
    expected = {
        "index.html": ([everything], []),
        "category/tech.html": ([tech, everything], [tech]),
        "category/tech/page/1.html": ([tech, everything], [tech]),
        "tech/2024/03/01/post-0.html": ([tech, everything], []),
    }
    for page, (head, visible) in expected.items():
        links = _FeedLinks()
        links.feed((public / page).read_text(encoding="utf-8"))
        page_url = base + page  # public/ is the site at base_url, as the feeds' own <link> pages say
        assert [urljoin(page_url, href) for href in links.head] == head, page
        assert [urljoin(page_url, href) for href in links.visible] == visible, page
    # The feeds call themselves by the same URLs, so a reader subscribing from any page gets the one
    # address every subscriber shares.
    with Archive.open(config.settings.database_path) as archive:
        publish_feeds(config, archive)
    for slug in ("tech", "all"):
        document = feedparser.parse((config.settings.archive_dir / "feeds" / f"{slug}.atom").read_bytes())
        assert [link.href for link in document.feed.links if link.rel == "self"] == [f"{base}feeds/{slug}.atom"]
    # Jekyll prefixes baseurl to the site-absolute /feeds/... its layout names: the same URLs.
    jekyll = yaml.safe_load((config.settings.archive_dir / "site" / "_config.yml").read_text(encoding="utf-8"))
    layout = (config.settings.archive_dir / "site" / "_layouts" / "default.html").read_text(encoding="utf-8")
    assert "'/feeds/all.atom' | relative_url" in layout
    assert jekyll["url"] + jekyll["baseurl"] + "/feeds/all.atom" == everything


def test_outputs_follow_a_renamed_or_removed_category_and_smaller_pages(tmp_path: Path) -> None:
    from aggregator.publishing.outputs import publish_outputs

    archive_dir = tmp_path / "archive"
    with serve_samples() as base:
        config = demo_config(tmp_path, base)
        text = config.path.read_text(encoding="utf-8").replace(
            "settings:\n", "settings:\n  feed_entries: 1\n  site_page_size: 1\n"
        )
        config.path.write_text(text, encoding="utf-8")
        config = load_config(config.path)
        with Archive.open(config.settings.database_path) as archive:
            asyncio.run(update_feeds(config, list(config.feeds), archive))
            publish_outputs(config, archive)
    assert (archive_dir / "feeds" / "archive" / "tech" / "2.atom").is_file()
    assert (archive_dir / "public" / "category" / "tech" / "page" / "3.html").is_file()

    # tech becomes engineering, and larger pages: nothing of tech's, nor past the last page, is left.
    text = config.path.read_text(encoding="utf-8")
    text = text.replace("  tech:\n", "  engineering:\n").replace("category: tech\n", "category: engineering\n")
    text = text.replace("feed_entries: 1\n  site_page_size: 1\n", "feed_entries: 2\n  site_page_size: 2\n")
    config.path.write_text(text, encoding="utf-8")
    config = load_config(config.path)
    with Archive.open(config.settings.database_path) as archive:
        report = publish_outputs(config, archive)
    left = sorted(
        path.relative_to(archive_dir).as_posix()
        for path in archive_dir.rglob("*")
        if path.is_file() and ("tech" in path.relative_to(archive_dir).as_posix())
    )
    assert left == []
    assert (archive_dir / "feeds" / "engineering.atom").is_file()
    assert not (archive_dir / "feeds" / "archive" / "news" / "2.atom").exists()  # 2 entries: one page
    assert not (archive_dir / "public" / "category" / "news" / "page" / "2.html").exists()
    assert report.feeds.removed

    # news leaves feeds.yaml with its feed: its entries stay, so do its page and the feed it links.
    text = config.path.read_text(encoding="utf-8").replace("  news:\n    title: Nachrichten\n", "")
    text = text.replace(f"  - url: {base}/news/atom.xml\n    category: news\n", "")
    config.path.write_text(text, encoding="utf-8")
    config = load_config(config.path)
    assert "news" not in config.categories
    with Archive.open(config.settings.database_path) as archive:
        publish_outputs(config, archive, rebuild=True)
    page = (archive_dir / "public" / "category" / "news.html").read_text(encoding="utf-8")
    assert "https://finews.withounder.com/feeds/news.atom" in page
    assert (archive_dir / "feeds" / "news.atom").is_file()
