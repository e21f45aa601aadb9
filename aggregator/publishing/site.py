"""The static archive on disk: a Jekyll tree in `archive_dir/site/` and the same pages as plain HTML in
`archive_dir/public/`, both derived from the database and rewritten only where bytes change.

Incremental runs (`entry_ids` given) write those entries' posts and the listing pages that show them.
Plain-HTML category pages are numbered from the oldest entry (page 1 holds the oldest `site_page_size`
entries), so a new entry rewrites the category's front page and its newest page or two, not every page;
`category/<slug>.html` always shows the newest entries.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from aggregator.core.atomic import AtomicBatch, write_atomic
from aggregator.core.errors import AggregatorError
from aggregator.core.models import Category, Config, StoredEntry
from aggregator.core.slugs import SlugRequest, assign_slugs, slug_cache_key
from aggregator.publishing.feed_documents import ALL, feed_path, feed_url
from aggregator.publishing.render import VERBATIM, PostView, Renderer, SiteInfo, relative_url, render_jekyll_post
from aggregator.store.archive import Archive

# A cache of post slugs beside the Jekyll site (Jekyll ignores dot files); deleting it only costs time.
SLUG_CACHE = ".post-slugs.json"
# What each category's posts were last rendered with besides their entries (see _Site.post_contexts).
POST_CONTEXTS = ".post-contexts.json"
SLUG_CACHE_VERSION = 2

_ID_CHUNK = 500


@dataclass
class SiteReport:
    posts_written: int = 0
    pages_written: int = 0
    unchanged: int = 0
    written_paths: list[str] = field(default_factory=list)
    removed_paths: list[str] = field(default_factory=list)  # posts that moved (new date, category or slug)

    @property
    def written(self) -> int:
        return self.posts_written + self.pages_written


@dataclass(frozen=True, slots=True)
class IndexRow:
    """What listings need about an entry; no content, so the whole archive fits in memory."""

    id: str
    category: str
    feed_url: str
    title: str
    first_title: str
    published: datetime
    first_seen: str


@dataclass(frozen=True, slots=True)
class ListedEntry:
    title: str
    published: datetime
    path: str
    category_title: str


@dataclass(frozen=True, slots=True)
class CategoryListing:
    slug: str
    title: str
    description: str
    count: int
    path: str


class _Writer:
    """Writes files under one root only, counting what changed.

    Files are staged in an AtomicBatch (temp files, no fsync each) and appear, durable, when write_site
    commits it. Written in the calling thread: without an fsync per file a write is a few syscalls, and
    the threads that used to wait on fsync only contended for the GIL (6 M futex calls in a first build).
    """

    def __init__(self, root: Path, prefix: str, report: SiteReport, batch: AtomicBatch) -> None:
        self.root = root
        self.resolved_root = root.resolve()
        self.prefix = prefix
        self.report = report
        self.emptied: set[Path] = set()  # folders a removed file may have left empty
        self.batch = batch  # shared by both sites: committed once, by write_site
        self._inside: dict[Path, bool] = {}  # folder -> whether it resolves inside the root

    def write(self, relative: str, text: str, *, post: bool = False) -> None:
        parts = relative.split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise AggregatorError(f"refusing to write unsafe site path {relative!r}")
        target = self.root.joinpath(*parts)
        if not self._resolves_inside(target):
            raise AggregatorError(f"refusing to write {relative!r} outside {self.root}")
        if self.batch.write(target, text.encode("utf-8")):
            if post:
                self.report.posts_written += 1
            else:
                self.report.pages_written += 1
            self.report.written_paths.append(f"{self.prefix}/{relative}")
        else:
            self.report.unchanged += 1

    def _resolves_inside(self, target: Path) -> bool:
        """target.resolve() inside the root, with each folder resolved once per run (resolving every
        path, a dozen lstat and getcwd calls each, was a quarter of the main thread's time); a symlink
        at the target itself is still resolved."""
        folder = target.parent
        inside = self._inside.get(folder)
        if inside is None:
            inside = self._inside[folder] = folder.resolve().is_relative_to(self.resolved_root)
        if inside and target.is_symlink():
            return target.resolve().is_relative_to(self.resolved_root)
        return inside

    def finish(self) -> None:
        # Date folders a moved post left empty go too (a site listing its folders would show them); the
        # top-level ones (_posts, a category's) stay.
        for folder in sorted(self.emptied, key=lambda path: len(path.parts), reverse=True):
            while folder.parent != self.root and folder.is_relative_to(self.root):
                try:
                    folder.rmdir()  # only when empty
                except OSError:
                    break
                folder = folder.parent
        self.emptied.clear()

    def exists(self, relative: str) -> bool:
        return self.root.joinpath(*relative.split("/")).is_file()

    def remove(self, relative: str) -> None:
        """Delete a file this site wrote earlier (a post whose path changed); same path checks as write."""
        parts = relative.split("/")
        if any(part in ("", ".", "..") for part in parts):
            return
        target = self.root.joinpath(*parts)
        if target.resolve().is_relative_to(self.resolved_root) and target.is_file():
            target.unlink()
            self.report.removed_paths.append(f"{self.prefix}/{relative}")
            self.emptied.add(target.parent)  # pruned in finish(), once no write may still need it


class _Site:
    """One run's view of the archive: index rows, slugs, categories, renderer and writers."""

    def __init__(self, config: Config, archive: Archive, report: SiteReport, batch: AtomicBatch) -> None:
        self.config = config
        self.archive = archive
        settings = config.settings
        self.page_size = settings.site_page_size
        self.zone = ZoneInfo(settings.site_timezone)
        self.renderer = Renderer(_templates_dir(config))
        parts = urlsplit(settings.base_url)
        self.info = SiteInfo(
            title=settings.site_title,
            language=settings.site_language,
            base_url=settings.base_url,
            home_url=f"//{parts.netloc}{parts.path or '/'}",
        )
        self.jekyll = _Writer(settings.archive_dir / "site", "site", report, batch)
        self.public = _Writer(settings.archive_dir / "public", "public", report, batch)
        self.rows = _index_rows(archive)  # oldest first
        self.by_id = {row.id: row for row in self.rows}
        self.moved: dict[str, tuple[str, str]] = {}  # entry id -> (jekyll, public) paths it had before
        self.slugs: dict[str, str] = {}
        self.slugs = self._assign_slugs()
        self.categories = _categories(config, self.rows)
        self.by_category: dict[str, list[IndexRow]] = {slug: [] for slug in self.categories}
        for row in self.rows:
            self.by_category[row.category].append(row)
        self.feed_tags = {feed.url: config.feed_tags(feed) for feed in config.feeds}
        self.contexts_path = settings.archive_dir / "site" / POST_CONTEXTS

    def post_contexts(self) -> dict[str, str]:
        """category slug -> a hash of everything its posts show besides their entries: the site's title,
        address and zone, the category's title and tags, its feeds' tags, the templates and the code."""
        shared = json.dumps([self.info.title, self.info.language, self.info.base_url, self.zone.key])
        shared += self.renderer.fingerprint()
        contexts = {}
        for slug, category in self.categories.items():
            tags = sorted((f.url, self.feed_tags[f.url]) for f in self.config.feeds if f.category == slug)
            text = json.dumps([shared, slug, category.title, category.tags, tags], ensure_ascii=False)
            contexts[slug] = hashlib.sha256(text.encode()).hexdigest()
        return contexts

    def stale_categories(self, contexts: dict[str, str]) -> set[str]:
        """Categories whose posts were rendered with another context than `contexts` (all of them when
        the record is missing: an archive published by an older version)."""
        try:
            before = json.loads(self.contexts_path.read_bytes())
        except (OSError, ValueError):
            before = {}
        if not isinstance(before, dict):
            before = {}
        return {slug for slug, context in contexts.items() if before.get(slug) != context}

    def _assign_slugs(self) -> dict[str, str]:
        """Slugs for every entry, reusing last run's where nothing they depend on changed (computing a
        slug with python-slugify for each of 100,000 entries on every publish took 2.5 s). The cache also
        remembers where each post was written, so a post whose path changed (the source changed its
        date, the feed moved to another category) is found in `self.moved` and its old files removed."""
        cache_path = self.config.settings.archive_dir / "site" / SLUG_CACHE
        known: dict[str, tuple[str, str]] = {}
        written_at: dict[str, tuple[str, str]] = {}
        try:
            document = json.loads(cache_path.read_bytes())
            if document.get("version") == SLUG_CACHE_VERSION:
                for entry_id, (key, slug, jekyll_path, public_path) in document["posts"].items():
                    known[entry_id] = (key, slug)
                    written_at[entry_id] = (jekyll_path, public_path)
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            pass  # no cache, or an unreadable one: compute every slug
        requests = {row.id: self._slug_request(row) for row in self.rows}
        self.slugs = assign_slugs(requests.values(), known)
        fresh = {
            row.id: [slug_cache_key(requests[row.id]), self.slugs[row.id], *self.row_paths(row)] for row in self.rows
        }
        self.moved = {
            entry_id: old
            for entry_id, old in written_at.items()
            if entry_id in fresh and tuple(fresh[entry_id][2:]) != old
        }
        if len(fresh) != len(known) or any(
            known.get(entry_id) != (key, slug) or written_at.get(entry_id) != (jekyll_path, public_path)
            for entry_id, (key, slug, jekyll_path, public_path) in fresh.items()
        ):
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            data = {"version": SLUG_CACHE_VERSION, "posts": fresh}
            write_atomic(cache_path, json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        return self.slugs

    def _slug_request(self, row: IndexRow) -> SlugRequest:
        site_day = row.published.astimezone(self.zone)
        return SlugRequest(
            entry_id=row.id,
            title=row.first_title,
            first_seen=row.first_seen,
            scopes=(f"file {row.published:%Y-%m-%d}", f"url {row.category}/{site_day:%Y/%m/%d}"),
        )

    # --- posts ---------------------------------------------------------------------------------------

    def post_view(self, entry: StoredEntry) -> PostView:
        category = self.categories[entry.category]
        tags = self.feed_tags.get(entry.feed_url, category.tags)
        return PostView(
            entry_id=entry.id,
            title=entry.title,
            published=entry.published,
            category=entry.category,
            category_title=category.title,
            tags=tags,
            body=entry.content or entry.summary,
            link=entry.link,
            slug=self.slugs[entry.id],
            site_time=entry.published.astimezone(self.zone),
        )

    def row_paths(self, row: IndexRow) -> tuple[str, str]:
        slug = self.slugs[row.id]
        site_day = row.published.astimezone(self.zone)
        return f"_posts/{row.published:%Y-%m-%d}-{slug}.md", f"{row.category}/{site_day:%Y/%m/%d}/{slug}.html"

    def write_posts(self, entries: Iterable[StoredEntry]) -> None:
        for entry in entries:
            post = self.post_view(entry)
            self.jekyll.write(post.post_file, render_jekyll_post(self.renderer, post, self.info), post=True)
            category_path = f"category/{post.category}.html"
            html = self.renderer.render(
                "html/post.html",
                **self.page_context(post.path, feeds=self.feeds_for(post.category)),
                post=post,
                category_path=category_path,
            )
            self.public.write(post.path, html, post=True)

    # --- listings ------------------------------------------------------------------------------------

    def page_context(self, page_path: str, feeds: list[dict[str, str]]) -> dict[str, Any]:
        href: Callable[[str], str] = lambda target: relative_url(page_path, target)  # noqa: E731
        return {"site": self.info, "href": href, "feeds": feeds}

    def feeds_for(self, category: str | None) -> list[dict[str, str]]:
        # The feeds' own URLs, as their self links and the OPML give them: on disk feeds/ sits beside
        # public/, on the web inside it (`<base_url>feeds/`), so no relative link reaches both; a `../`
        # one only reached them while base_url had no path. A reader subscribing from a local copy or
        # preview also gets the address subscribers share, not a file: or localhost one.
        feeds = [{"title": self.info.title, "path": self.atom_url(ALL)}]
        if category is not None:
            feeds.insert(0, {"title": self.categories[category].title, "path": self.atom_url(category)})
        return feeds

    def atom_url(self, slug: str) -> str:
        return feed_url(self.info.base_url, feed_path(slug, "atom"))

    def listed(self, row: IndexRow) -> ListedEntry:
        return ListedEntry(
            title=row.title,
            published=row.published,
            path=self.row_paths(row)[1],
            category_title=self.categories[row.category].title,
        )

    def listing(self, slug: str) -> CategoryListing:
        category = self.categories[slug]
        return CategoryListing(
            slug=slug,
            title=category.title,
            description=category.description,
            count=len(self.by_category[slug]),
            path=f"category/{slug}.html",
        )

    def write_home(self) -> None:
        newest = [self.listed(row) for row in reversed(self.rows[-self.page_size :])]
        listings = [self.listing(slug) for slug in self.categories]
        html = self.renderer.render(
            "html/index.html",
            **self.page_context("index.html", self.feeds_for(None)),
            categories=listings,
            newest=newest,
        )
        self.public.write("index.html", html)

    def page_count(self, slug: str) -> int:
        return max(1, math.ceil(len(self.by_category[slug]) / self.page_size))

    def remove_stale_listings(self) -> None:
        """Listing pages of categories the site no longer has (renamed, or removed once empty) and numbered
        pages past a category's last (a larger site_page_size): left, they were served with links to
        posts that had moved."""
        listed = {f"category/{slug}.html" for slug in self.categories}
        numbered = {
            f"category/{slug}/page/{n}.html" for slug in self.categories for n in range(1, self.page_count(slug) + 1)
        }
        for writer, wanted in ((self.public, listed | numbered), (self.jekyll, listed)):
            folder = writer.root / "category"
            if not folder.is_dir():
                continue
            for path in sorted(folder.rglob("*.html")):
                relative = path.relative_to(writer.root).as_posix()
                if relative not in wanted:
                    writer.remove(relative)

    def write_category_front(self, slug: str) -> None:
        rows = self.by_category[slug]
        newest = rows[-self.page_size :]
        # "Older" from the front page goes to the numbered page holding the next older entry.
        older_position = len(rows) - len(newest) - 1
        older = f"category/{slug}/page/{older_position // self.page_size + 1}.html" if older_position >= 0 else None
        self._write_listing(slug, f"category/{slug}.html", newest, page_number=None, newer=None, older=older)

    def write_category_page(self, slug: str, number: int) -> None:
        rows = self.by_category[slug]
        pages = self.page_count(slug)
        chunk = rows[(number - 1) * self.page_size : number * self.page_size]
        newer = f"category/{slug}/page/{number + 1}.html" if number < pages else f"category/{slug}.html"
        older = f"category/{slug}/page/{number - 1}.html" if number > 1 else None
        path = f"category/{slug}/page/{number}.html"
        self._write_listing(slug, path, chunk, page_number=number, newer=newer, older=older)

    def _write_listing(
        self, slug: str, path: str, rows: list[IndexRow], page_number: int | None, newer: str | None, older: str | None
    ) -> None:
        html = self.renderer.render(
            "html/category.html",
            **self.page_context(path, self.feeds_for(slug)),
            category=self.listing(slug),
            items=[self.listed(row) for row in reversed(rows)],
            page_number=page_number,
            newer=newer,
            older=older,
            feed_path=self.atom_url(slug),
        )
        self.public.write(path, html)

    # --- Jekyll's fixed files ----------------------------------------------------------------------

    def write_jekyll_frame(self) -> None:
        parts = urlsplit(self.info.base_url)
        self.jekyll.write(
            "_config.yml",
            self.renderer.render(
                "jekyll/_config.yml",
                site=self.info,
                url=f"{parts.scheme}://{parts.netloc}",
                baseurl=parts.path.rstrip("/"),
                timezone=self.config.settings.site_timezone,
                categories=list(self.categories.values()),
            )
            + "\n",
        )
        for template, target in VERBATIM.items():
            self.jekyll.write(target, self.renderer.source(template))
        for category in self.categories.values():
            self.jekyll.write(
                f"category/{category.slug}.html", self.renderer.render("jekyll/category.html", category=category) + "\n"
            )


def write_site(
    config: Config, archive: Archive, entry_ids: set[str] | None = None, rebuild: bool = False
) -> SiteReport:
    """Write the static archive; see the module docstring for what each mode writes."""
    report = SiteReport()
    with AtomicBatch() as batch:  # every page durable at once, before the record of what they were rendered with
        site = _Site(config, archive, report, batch)
        contexts = site.post_contexts()
        _write(site, archive, entry_ids, rebuild, site.stale_categories(contexts))
        site.jekyll.finish()
        site.public.finish()
    write_atomic(site.contexts_path, json.dumps(contexts, sort_keys=True).encode())
    report.written_paths.sort()
    return report


def _write(site: _Site, archive: Archive, entry_ids: set[str] | None, rebuild: bool, stale: set[str]) -> None:
    site.write_jekyll_frame()
    if stale and not rebuild:
        # A category's title or tags, the site's address, a template or the renderer changed: every post
        # of those categories is rendered again (only files whose bytes change are written), and every
        # listing, as a first run would.
        rendered = {row.id for slug in stale for row in site.by_category[slug]}
        rendered |= {entry_id for entry_id in entry_ids or () if entry_id in site.by_id}
        site.write_posts(_entries_by_id(archive, sorted(rendered)))
        entry_ids = None
    else:
        rendered = set()
    if site.moved:
        # Posts whose path changed: remove the old files, write those posts (with whatever else changed)
        # and then every listing, as a first run would.
        for jekyll_path, public_path in site.moved.values():
            site.jekyll.remove(jekyll_path)
            site.public.remove(public_path)
        if not rebuild:
            ids = set(site.moved) | (entry_ids or set())
            site.write_posts(_entries_by_id(archive, [i for i in ids if i in site.by_id]))
            entry_ids = None
    if rebuild:
        site.write_posts(archive.entries())
    elif entry_ids is None:
        missing = [
            row.id
            for row in site.rows
            if row.id not in rendered
            and not (site.jekyll.exists(site.row_paths(row)[0]) and site.public.exists(site.row_paths(row)[1]))
        ]
        site.write_posts(_entries_by_id(archive, missing))
    else:
        changed = [entry_id for entry_id in entry_ids if entry_id in site.by_id]
        site.write_posts(_entries_by_id(archive, changed))
    if rebuild or entry_ids is None:
        for slug in site.categories:
            site.write_category_front(slug)
            for number in range(1, site.page_count(slug) + 1):
                site.write_category_page(slug, number)
        site.write_home()
        site.remove_stale_listings()
        return
    _write_affected_listings(site, {entry_id for entry_id in entry_ids if entry_id in site.by_id})


def _write_affected_listings(site: _Site, changed: set[str]) -> None:
    if not changed:
        return
    first_page: dict[str, int] = {}
    for slug, rows in site.by_category.items():
        for position, row in enumerate(rows):
            if row.id in changed:
                # From the page before (its "newer" link may change) to the newest page.
                first_page[slug] = max(1, position // site.page_size)
                break
    for slug, start in first_page.items():
        site.write_category_front(slug)
        for number in range(start, site.page_count(slug) + 1):
            site.write_category_page(slug, number)
    site.write_home()


def _entries_by_id(archive: Archive, ids: list[str]) -> Iterator[StoredEntry]:
    for start in range(0, len(ids), _ID_CHUNK):
        yield from archive.entries(ids=ids[start : start + _ID_CHUNK])


def _index_rows(archive: Archive) -> list[IndexRow]:
    """Every entry's listing data, oldest first, with its first title (a later edit keeps the post's slug)."""
    # A narrow read of the archive's tables: the Archive API yields whole entries with their content,
    # far more than listings need for 100,000 entries.
    cursor = archive.db.conn.execute(
        """
        SELECT e.id, e.category, e.feed_url, e.title,
               COALESCE((SELECT r.title FROM entry_revisions r WHERE r.entry_id = e.id AND r.revision = 1), e.title),
               e.published, e.first_seen
        FROM entries e ORDER BY e.published_utc, e.id
        """
    )
    return [
        IndexRow(
            id=row[0],
            category=row[1],
            feed_url=row[2],
            title=row[3],
            first_title=row[4],
            published=datetime.fromisoformat(row[5]),
            first_seen=row[6],
        )
        for row in cursor
    ]


def _categories(config: Config, rows: list[IndexRow]) -> dict[str, Category]:
    """Configured categories in feeds.yaml order, then any that only the archive still remembers."""
    categories = dict(config.categories)
    for row in rows:
        if row.category not in categories:
            categories[row.category] = Category(slug=row.category, title=row.category)
    return categories


def _templates_dir(config: Config) -> Path | None:
    directory = config.settings.templates_dir
    if directory is None:
        return None
    directory = directory if directory.is_absolute() else config.path.parent / directory
    if not directory.is_dir():
        raise AggregatorError(f"templates_dir {directory} is not a folder")
    return directory
