"""Republished feeds: real sample feeds served on 127.0.0.1, a real SQLite archive, real feedgen output
re-read with feedparser (and lxml for well-formedness)."""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import json
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from aggregator.cli.demo import DEMO_CONFIG, serve_samples
from aggregator.configuration.load import load_config
from aggregator.core.models import Config, Enclosure, Entry, PollRecord, StoredEntry
from aggregator.parsing.normalize import content_fingerprint, entry_identity
from aggregator.pipeline import update_feeds
from aggregator.publishing.feed_documents import (
    ALL,
    HISTORY_NS,
    archive_page_path,
    entry_iri,
    feed_path,
    feed_url,
)
from aggregator.publishing.feeds import publish_feeds
from aggregator.store.archive import Archive

ATOM = "{http://www.w3.org/2005/Atom}"
EXTRA_FEED = "https://odd.example.net/feed.xml"


@pytest.fixture(scope="module")
def sample_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real archive of the three bundled samples (RSS 2.0, Atom, GBK Chinese), fetched over HTTP once."""
    root = tmp_path_factory.mktemp("samples")
    with serve_samples() as base:
        (root / "feeds.yaml").write_text(DEMO_CONFIG.format(base=base), encoding="utf-8")
        config = load_config(root / "feeds.yaml")
        with Archive.open(config.settings.database_path) as archive:
            summary = asyncio.run(update_feeds(config, list(config.feeds), archive))
    assert not summary.failed, summary.failed
    return root


@pytest.fixture
def config(sample_archive: Path, tmp_path: Path) -> Config:
    """A private copy of the sample archive (so each test publishes into its own folder)."""
    shutil.copy(sample_archive / "archive" / "aggregator.db", tmp_path / "aggregator.db")
    base = load_config(sample_archive / "feeds.yaml")
    return replace(base, settings=replace(base.settings, archive_dir=tmp_path))


def feeds_root(config: Config) -> Path:
    return config.settings.archive_dir / "feeds"


def stored(config: Config, slug: str) -> list[StoredEntry]:
    with Archive.open(config.settings.database_path) as archive:
        return list(archive.entries(category=None if slug == ALL else slug))


def slugs(config: Config) -> list[str]:
    return [*config.categories, ALL]


def add_odd_entry(config: Config, *, number: int = 1, fetched_at: datetime | None = None) -> Entry:
    """Store an entry no parser would produce: control characters everywhere, no date, id '1234'."""
    now = fetched_at or datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    title = f"bad\x01 title\x0b {number} \ufffe<&>"
    key = f"{1233 + number}"
    entry = Entry(
        id=entry_identity(EXTRA_FEED, key),
        key=key,
        link="",
        title=title,
        author="Zoë\x02",
        summary="<p>x\x00y</p>",
        content="",
        published=now,
        updated=None,
        date_flag="missing",
        tags=("t\x07ag",),
        enclosures=(Enclosure(url="https://odd.example.net/a.bin", type="", length=0),),
        content_hash=content_fingerprint(title, "", "", "", "", (), ()) + str(number),
    )
    poll = PollRecord(
        url=EXTRA_FEED,
        category="tech",
        fetched_at=now,
        status="ok",
        consecutive_errors=0,
        title="Odd\x03 feed",
        entries=(entry,),
    )
    with Archive.open(config.settings.database_path) as archive:
        archive.record([poll])
    return entry


def publish(config: Config, categories: set[str] | None = None, **kwargs: bool):  # type: ignore[no-untyped-def]
    with Archive.open(config.settings.database_path) as archive:
        return publish_feeds(config, archive, categories, **kwargs)


def walk_atom(config: Config, slug: str) -> list[feedparser.FeedParserDict]:
    """Every document a subscriber reads: the subscription document, then prev-archive links to the end."""
    documents = []
    path = feeds_root(config) / feed_path(slug, "atom")
    prefix = feed_url(config.settings.base_url, "")
    seen: set[str] = set()
    while True:
        parsed = feedparser.parse(path.read_bytes())
        assert not parsed.bozo, parsed.get("bozo_exception")
        documents.append(parsed)
        previous = [link.href for link in parsed.feed.get("links", []) if link.rel == "prev-archive"]
        if not previous:
            return documents
        assert previous[0].startswith(prefix) and previous[0] not in seen
        seen.add(previous[0])
        path = feeds_root(config) / previous[0][len(prefix) :]


# --- round trip ----------------------------------------------------------------------------------


def test_every_feed_round_trips_through_feedparser(config: Config) -> None:
    report = publish(config)
    assert report.feeds == [*sorted(config.categories), ALL]
    for slug in slugs(config):
        expected = {entry_iri(e.feed_url, e.key, config.settings.base_url): e for e in stored(config, slug)}
        assert expected
        atom = feedparser.parse((feeds_root(config) / feed_path(slug, "atom")).read_bytes())
        rss = feedparser.parse((feeds_root(config) / feed_path(slug, "rss")).read_bytes())
        document = json.loads((feeds_root(config) / feed_path(slug, "json")).read_text(encoding="utf-8"))
        for parsed in (atom, rss):
            assert not parsed.bozo, parsed.get("bozo_exception")
            assert [item.id for item in parsed.entries] == list(expected)  # newest first, every one
        assert [item["id"] for item in document["items"]] == list(expected)
        for atom_item, rss_item, json_item in zip(atom.entries, rss.entries, document["items"], strict=True):
            entry = expected[atom_item.id]
            for title in (atom_item.title, rss_item.title, json_item["title"]):
                assert title == entry.title  # CJK byte for byte
            assert atom_item.link == rss_item.link == json_item["url"] == entry.link
            # Dates keep the source's own offset in every format.
            assert atom_item.published == json_item["date_published"] == entry.published.isoformat()
            rss_date = email.utils.parsedate_to_datetime(rss_item.published)
            assert rss_date == entry.published and rss_date.utcoffset() == entry.published.utcoffset()
            assert entry.category in [tag.term for tag in atom_item.tags] and entry.category in json_item["tags"]
            assert atom_item.source.title == rss_item.source.title == entry.feed_title
            assert rss_item.source.href == entry.feed_url
            assert json_item["_source"]["feed_url"] == entry.feed_url


def test_chinese_entries_keep_their_text_and_offset(config: Config) -> None:
    publish(config)
    parsed = feedparser.parse((feeds_root(config) / "zhongguoshuiwubao.atom").read_bytes())
    titles = [item.title for item in parsed.entries]
    assert "“四维”发力 确保征管改革见成效" in titles
    assert parsed.feed.title == "中国税务报新闻"
    item = parsed.entries[0]
    assert item.published.endswith("+08:00")
    assert "中国税务报新闻" in [tag.term for tag in item.tags]
    assert "长沙税务部门" in item.summary


def test_ids_that_are_not_iris_become_stable_tag_uris(config: Config) -> None:
    base = config.settings.base_url
    assert entry_iri("https://a.example/f.xml", "https://a.example/post/1", base) == "https://a.example/post/1"
    assert entry_iri("https://a.example/f.xml", "urn:uuid:1225c695", base) == "urn:uuid:1225c695"
    tag = entry_iri("https://a.example/f.xml?x=1", "1234", base)
    assert tag == entry_iri("https://a.example/f.xml?x=1", "1234", base)
    assert tag.startswith("tag:a.example,2000:") and tag.endswith(":1234")
    assert tag != entry_iri("https://a.example/g.xml", "1234", base)
    assert entry_iri("https://a.example/f.xml", "sha256:abc", base).startswith("tag:a.example,")
    assert entry_iri("https://a.example/f.xml", "two words", base).endswith(":two%20words")
    publish(config)
    ids = [item.id for item in feedparser.parse((feeds_root(config) / "tech.atom").read_bytes()).entries]
    assert any(i.startswith("tag:127.0.0.1,2000:") and i.endswith(":engineering-2024-0042") for i in ids)


def test_enclosures_and_authors(config: Config) -> None:
    publish(config)
    atom = feedparser.parse((feeds_root(config) / "tech.atom").read_bytes())
    rss = feedparser.parse((feeds_root(config) / "tech.rss").read_bytes())
    for parsed in (atom, rss):
        by_link = {item.link: item for item in parsed.entries}
        enclosure = by_link["https://engineering.example.org/2024/revisions"].enclosures[0]
        assert enclosure.href == "https://engineering.example.org/audio/revisions.mp3"
        assert enclosure.type == "audio/mpeg" and int(enclosure.length) == 1234567
        assert by_link["https://engineering.example.org/2024/conditional-get"].author == "Ada Example"


# --- RFC 5005 archive pages ------------------------------------------------------------------------


def test_archive_pages_cover_every_entry(config: Config) -> None:
    config = replace(config, settings=replace(config.settings, feed_entries=2))
    publish(config)
    for slug in slugs(config):
        expected = {entry_iri(e.feed_url, e.key, config.settings.base_url) for e in stored(config, slug)}
        documents = walk_atom(config, slug)
        assert len(documents) == 1 + len(expected) // 2
        seen = [item.id for document in documents for item in document.entries]
        assert set(seen) == expected
        assert all(len(document.entries) <= 2 for document in documents)
        # Archive pages say so, point back at the subscription document and on to the next page (RFC 5005's
        # next-archive), and never at a page not yet full: the newest page has none.
        for newer, document in itertools.pairwise(documents):
            links = {link.rel: link.href for link in document.feed.links}
            assert links["current"] == feed_url(config.settings.base_url, feed_path(slug, "atom"))
            if newer is documents[0]:
                assert "next-archive" not in links
            else:
                assert links["next-archive"] == {link.rel: link.href for link in newer.feed.links}["self"]
    tree = etree.parse(str(feeds_root(config) / archive_page_path(ALL, 1)))
    assert tree.getroot().find(f"{{{HISTORY_NS}}}archive") is not None
    current = etree.parse(str(feeds_root(config) / "all.atom"))
    assert current.getroot().find(f"{{{HISTORY_NS}}}archive") is None


def test_a_full_archive_page_changes_once_when_the_next_one_is_made_and_never_after(config: Config) -> None:
    config = replace(config, settings=replace(config.settings, feed_entries=2))
    publish(config)
    pages = sorted((feeds_root(config) / "archive" / "tech").glob("*.atom"), key=lambda path: int(path.stem))
    *older, newest = pages
    before = {page: (page.read_bytes(), page.stat().st_mtime_ns) for page in pages}
    # Late entries land after everything stored before them, whatever their dates: enough of them to fill
    # the page in the making.
    later = datetime.now(UTC) + timedelta(seconds=5)
    for number in range(1, 3 - len(stored(config, "tech")) % 2):
        add_odd_entry(config, number=number, fetched_at=later + timedelta(seconds=number))
        report = publish(config, {"tech"})
        assert report.feeds == ["tech", ALL]
    made = feeds_root(config) / archive_page_path("tech", len(pages) + 1)
    assert made.is_file() and made not in before
    # The newest page changed once, to link the page made after it; the older ones did not.
    links = {link.rel: link.href for link in feedparser.parse(newest.read_bytes()).feed.links}
    assert links["next-archive"] == feed_url(config.settings.base_url, archive_page_path("tech", len(pages) + 1))
    assert newest.read_bytes() != before[newest][0]
    for page in older:
        assert (page.read_bytes(), page.stat().st_mtime_ns) == before[page]
    # From then on its bytes, and so its ETag (a hash of them) and Last-Modified, stay as they are.
    after = {page: (page.read_bytes(), page.stat().st_mtime_ns) for page in [*pages, made]}
    for number in range(3, 6):
        add_odd_entry(config, number=number, fetched_at=later + timedelta(seconds=number))
        publish(config, {"tech"})
    publish(config)
    for page in pages:
        assert (page.read_bytes(), page.stat().st_mtime_ns) == after[page]
    ids = {item.id for document in walk_atom(config, "tech") for item in document.entries}
    assert entry_iri(EXTRA_FEED, "1234", config.settings.base_url) in ids
    assert len(ids) == len(stored(config, "tech"))


# --- validity and robustness -----------------------------------------------------------------------


def test_feeds_are_well_formed_with_required_elements(config: Config) -> None:
    add_odd_entry(config)
    config = replace(config, settings=replace(config.settings, feed_entries=2))
    publish(config)
    base = config.settings.base_url
    files = sorted(feeds_root(config).rglob("*.atom"))
    assert len(files) > len(slugs(config))
    for path in files:
        root = etree.parse(str(path)).getroot()
        assert root.tag == f"{ATOM}feed"
        for name in ("id", "title", "updated"):
            assert root.find(f"{ATOM}{name}") is not None, (path, name)
        assert root.find(f"{ATOM}id").text.startswith(base)
        self_links = [link.get("href") for link in root.findall(f"{ATOM}link") if link.get("rel") == "self"]
        assert len(self_links) == 1 and self_links[0].startswith(base)
        datetime.fromisoformat(root.find(f"{ATOM}updated").text)
        for entry in root.findall(f"{ATOM}entry"):
            for name in ("id", "title", "updated"):
                assert entry.find(f"{ATOM}{name}") is not None, (path, name)
            assert entry.find(f"{ATOM}source/{ATOM}id") is not None
    for slug in slugs(config):
        channel = etree.parse(str(feeds_root(config) / feed_path(slug, "rss"))).getroot().find("channel")
        for name in ("title", "link", "description", "lastBuildDate"):
            assert channel.find(name) is not None, (slug, name)
        # The feed's web page is the site page listing the same entries.
        page = base if slug == "all" else f"{base}category/{slug}.html"
        assert channel.find("link").text == page
        email.utils.parsedate_to_datetime(channel.find("lastBuildDate").text)
        for item in channel.findall("item"):
            assert item.find("guid") is not None
            assert item.find("title") is not None or item.find("description") is not None
        document = json.loads((feeds_root(config) / feed_path(slug, "json")).read_bytes())
        assert document["version"] == "https://jsonfeed.org/version/1.1"
        assert document["feed_url"] == feed_url(base, feed_path(slug, "json"))
        assert all(item["id"] for item in document["items"])
    opml = etree.parse(str(feeds_root(config) / "index.opml")).getroot()
    urls = {outline.get("xmlUrl") for outline in opml.iter("outline")}
    assert urls == {feed_url(base, feed_path(slug, "atom")) for slug in slugs(config)}
    pages = {outline.get("xmlUrl"): outline.get("htmlUrl") for outline in opml.iter("outline")}
    for slug in slugs(config):  # each feed's web page, as its own <link> says
        assert pages[feed_url(base, feed_path(slug, "atom"))] == (
            base if slug == "all" else f"{base}category/{slug}.html"
        )


def test_control_characters_and_missing_dates_publish_fine(config: Config) -> None:
    entry = add_odd_entry(config)
    publish(config)
    identity = entry_iri(EXTRA_FEED, entry.key, config.settings.base_url)
    atom = feedparser.parse((feeds_root(config) / "tech.atom").read_bytes())
    rss = feedparser.parse((feeds_root(config) / "tech.rss").read_bytes())
    document = json.loads((feeds_root(config) / "tech.json").read_bytes())
    for parsed in (atom, rss):
        assert not parsed.bozo, parsed.get("bozo_exception")
        item = next(i for i in parsed.entries if i.id == identity)
        assert item.title == "bad title 1 <&>"
        assert "published" not in item  # no made-up date
        assert item.enclosures[0].type == "application/octet-stream"
    item = next(i for i in document["items"] if i["id"] == identity)
    assert "date_published" not in item and item["title"] == "bad title 1 <&>"


def test_unchanged_feeds_are_not_rewritten(config: Config) -> None:
    first = publish(config)
    assert first.written
    files = sorted(p for p in feeds_root(config).rglob("*") if p.is_file() and not p.name.startswith("."))
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    second = publish(config)
    assert second.written == [] and second.skipped > 0
    forced = publish(config, force=True)
    assert forced.written == [] and forced.unchanged == len(files)
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before


def test_incremental_publish_touches_only_the_changed_category(config: Config) -> None:
    publish(config)
    news = feeds_root(config) / "news.atom"
    mtime = news.stat().st_mtime_ns
    add_odd_entry(config)
    report = publish(config, {"tech"})
    assert report.feeds == ["tech", ALL]
    written = {p.name for p in report.written}
    assert {"tech.atom", "tech.rss", "tech.json", "all.atom", "all.rss", "all.json"} <= written
    assert news.stat().st_mtime_ns == mtime
    assert publish(config, set()).feeds == []


def test_feed_dates_come_from_entries_not_the_clock(config: Config) -> None:
    publish(config)
    parsed = feedparser.parse((feeds_root(config) / "zhongguoshuiwubao.atom").read_bytes())
    newest = max(stored(config, "zhongguoshuiwubao"), key=lambda e: e.published)
    assert parsed.feed.updated == newest.published.isoformat()
    assert newest.published.utcoffset() == timezone(timedelta(hours=8)).utcoffset(None)


def _store_copy(
    config: Config, feed: str, key: str, content: str, when: datetime, link: str = "https://shared.example.org/post"
) -> None:
    """One entry under `key` from `feed` (category tech), polled at `when`."""
    title = "Shared"
    entry = Entry(
        id=entry_identity(feed, key),
        key=key,
        link=link,
        title=title,
        author="",
        summary="",
        content=content,
        published=datetime(2024, 6, 1, 8, 0, tzinfo=timezone(timedelta(hours=8))),
        updated=None,
        date_flag="",
        tags=(),
        enclosures=(),
        content_hash=content_fingerprint(title, "", "", "", content, (), ()),
    )
    poll = PollRecord(url=feed, category="tech", fetched_at=when, status="ok", consecutive_errors=0, entries=(entry,))
    with Archive.open(config.settings.database_path) as archive:
        archive.record([poll])


def test_one_item_carried_by_two_sources_is_one_entry_per_document(config: Config) -> None:
    # The same global id from two feeds (a syndicated post, one feed at two addresses) describes one
    # entry: each document carries it once (JSON Feed requires unique ids), the copy changed last.
    when = datetime(2024, 6, 2, tzinfo=UTC)
    _store_copy(config, "https://a.example.net/feed.xml", "https://shared.example.org/post", "<p>a</p>", when)
    _store_copy(config, "https://b.example.net/feed.xml", "https://shared.example.org/post", "<p>b</p>", when)
    publish(config)
    for slug in ("tech", ALL):
        atom = feedparser.parse((feeds_root(config) / feed_path(slug, "atom")).read_bytes())
        assert [e.id for e in atom.entries].count("https://shared.example.org/post") == 1
        items = json.loads((feeds_root(config) / feed_path(slug, "json")).read_text(encoding="utf-8"))["items"]
        ids = [item["id"] for item in items]
        assert len(ids) == len(set(ids))


def test_an_entry_edited_at_the_source_is_updated_for_readers(config: Config) -> None:
    # Sources edit posts without touching their dates: the republished entry's updated date is when the
    # edit was stored (in the entry's own offset), so readers that go by it refresh the entry.
    feed = "https://edits.example.net/feed.xml"
    _store_copy(config, feed, "edited-1", "<p>first</p>", datetime(2024, 6, 2, tzinfo=UTC))
    publish(config)
    atom = feedparser.parse((feeds_root(config) / feed_path("tech", "atom")).read_bytes())
    [before] = [e for e in atom.entries if e.id.endswith("edited-1")]
    assert before.updated == "2024-06-01T08:00:00+08:00"
    _store_copy(config, feed, "edited-1", "<p>second</p>", datetime(2024, 6, 3, 4, 30, tzinfo=UTC))
    publish(config)
    atom = feedparser.parse((feeds_root(config) / feed_path("tech", "atom")).read_bytes())
    [after] = [e for e in atom.entries if e.id.endswith("edited-1")]
    assert after.updated == "2024-06-03T12:30:00+08:00" and after.published == "2024-06-01T08:00:00+08:00"
    items = json.loads((feeds_root(config) / feed_path("tech", "json")).read_text(encoding="utf-8"))["items"]
    [item] = [i for i in items if i["id"].endswith("edited-1")]
    assert item["date_modified"] == "2024-06-03T12:30:00+08:00"


def test_an_entry_without_an_author_is_credited_to_its_source_not_to_the_archive(config: Config) -> None:
    add_odd_entry(config)  # an entry with an author
    _store_copy(
        config, "https://quiet.example.net/feed.xml", "anonymous-1", "<p>x</p>", datetime(2024, 6, 2, tzinfo=UTC)
    )
    publish(config)
    atom = feedparser.parse((feeds_root(config) / feed_path("tech", "atom")).read_bytes())
    [anonymous] = [e for e in atom.entries if e.id.endswith("anonymous-1")]
    # By RFC 4287 the entry's author is its source's, which names the source feed (its host, as it has
    # no title yet), not this archive.
    assert "author" not in anonymous and anonymous.source.author == "quiet.example.net"


def test_links_are_republished_as_valid_iris(config: Config) -> None:
    # A link with a space (sources do publish them) is encoded as a browser would follow it; characters
    # an IRI allows, Chinese included, stay as they are.
    link = "http://example.com/a path/\n税务?q=1&r=2"  # a line break, as a source wrapped it
    _store_copy(
        config, "https://spaces.example.net/feed.xml", "spaced-1", "<p>x</p>", datetime(2024, 6, 2, tzinfo=UTC), link
    )
    publish(config)
    expected = "http://example.com/a%20path/税务?q=1&r=2"
    atom = feedparser.parse((feeds_root(config) / feed_path("tech", "atom")).read_bytes())
    [entry] = [e for e in atom.entries if e.id.endswith("spaced-1")]
    assert entry.link == expected
    items = json.loads((feeds_root(config) / feed_path("tech", "json")).read_text(encoding="utf-8"))["items"]
    assert [i["url"] for i in items if i["id"].endswith("spaced-1")] == [expected]


def test_a_symlink_planted_among_published_files_is_replaced_not_followed(config: Config, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim"
    victim.write_text("not the publisher's\n", encoding="utf-8")
    feeds_root(config).mkdir(parents=True, exist_ok=True)
    planted = feeds_root(config) / "all.atom"
    planted.symlink_to(victim)
    (feeds_root(config) / "tech.atom").symlink_to(outside / "deep" / "new-file")  # dangling
    publish(config)
    assert victim.read_text(encoding="utf-8") == "not the publisher's\n"
    assert not (outside / "deep").exists()
    assert not planted.is_symlink() and planted.read_bytes().startswith(b"<?xml")


def test_a_publish_that_cannot_write_is_one_line(config: Config) -> None:
    from aggregator.core.errors import PublishError
    from aggregator.publishing.outputs import publish_outputs

    (config.settings.archive_dir / "public").mkdir(parents=True, exist_ok=True)
    shutil.rmtree(config.settings.archive_dir / "public")
    (config.settings.archive_dir / "public").write_text("a file where the site's folder goes", encoding="utf-8")
    with Archive.open(config.settings.database_path) as archive, pytest.raises(PublishError) as raised:
        publish_outputs(config, archive)
    assert str(raised.value).startswith("cannot write ") and "\n" not in str(raised.value)
