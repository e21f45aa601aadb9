"""Domain types every stage speaks: small frozen dataclasses, no I/O, no third-party types."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

# --- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    archive_dir: Path
    base_url: str = "https://example.org/"
    default_interval: int = 30 * 60
    min_interval: int = 5 * 60
    max_interval: int = 24 * 60 * 60
    user_agent: str = "aggregator/0.1 (+https://github.com/aggregator-archive/aggregator)"
    connect_timeout: float = 10.0
    request_timeout: float = 30.0
    max_body_bytes: int = 20 * 1024 * 1024
    max_redirects: int = 5
    concurrency: int = 16
    per_host_concurrency: int = 4
    parse_workers: int = 0
    parse_timeout: float = 20.0
    parse_memory_limit: int = 1024**3  # address-space cap of each parser process
    publish: bool = True
    # Network safety: host:port pairs that redirects and learned URLs may reach even when private.
    allow_hosts: tuple[str, ...] = ()
    strict_network: bool = False  # apply the private-address rule to configured URLs too
    feed_entries: int = 50  # entries per republished feed, and per RFC 5005 archive page
    serve_host: str = "127.0.0.1"
    serve_port: int = 8080
    # Politeness and the daemon (issue 5): at least this long between request starts to one host.
    per_host_delay: float = 0.25
    shutdown_grace: float = 30.0  # how long the daemon lets in-flight updates finish on SIGTERM
    adaptive_interval: bool = True  # stretch the interval of feeds that post rarely (never below `interval`)
    site_title: str = "Archive"
    site_language: str = "en"  # the `lang` of the static site's pages
    site_page_size: int = 50  # entries per category page of the static site
    site_timezone: str = "UTC"  # Jekyll dates post URLs in this zone; the plain-HTML site does the same
    templates_dir: Path | None = None  # files here override the bundled site templates (relative to feeds.yaml)

    @property
    def database_path(self) -> Path:
        return self.archive_dir / "aggregator.db"


@dataclass(frozen=True, slots=True)
class Category:
    slug: str
    title: str
    description: str = ""
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FeedConfig:
    url: str
    category: str
    title: str | None = None
    tags: tuple[str, ...] = ()
    interval: int | None = None
    enabled: bool = True
    headers: tuple[tuple[str, str], ...] = ()
    charset: str | None = None
    timezone: str | None = None
    line: int = 0


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    settings: Settings
    categories: dict[str, Category]
    feeds: tuple[FeedConfig, ...]

    def feed_tags(self, feed: FeedConfig) -> tuple[str, ...]:
        """The feed's own tags, else its category's default tags."""
        return feed.tags or self.categories[feed.category].tags


# --- fetching ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedState:
    """What the archive remembers about a feed between polls."""

    url: str
    fetch_url: str
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    consecutive_errors: int = 0
    gone: bool = False
    retry_after_until: datetime | None = None  # the server's Retry-After, whoever polled it last
    ttl_minutes: int | None = None  # the RSS <ttl> of the last document parsed: a 304 still honours it


@dataclass(frozen=True, slots=True)
class Fetched:
    final_url: str
    status: int
    body: bytes
    content_type: str | None
    etag: str | None
    last_modified: str | None
    permanent_url: str | None = None
    max_age: int | None = None


@dataclass(frozen=True, slots=True)
class NotModified:
    permanent_url: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    max_age: int | None = None


@dataclass(frozen=True, slots=True)
class FetchFailure:
    message: str
    status: int | None = None
    retry_after: int | None = None
    gone: bool = False


FetchResult = Fetched | NotModified | FetchFailure


# --- parsing -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Enclosure:
    url: str
    type: str = ""
    length: int = 0


@dataclass(frozen=True, slots=True)
class RawText:
    """A piece of text as the source gave it: its value, media type and base URL for relative links."""

    value: str
    type: str = "text/html"
    base: str = ""


@dataclass(frozen=True, slots=True)
class RawEntry:
    """One entry as a parser read it, before the normaliser makes it safe and uniform."""

    id: str = ""
    link: str = ""
    title: RawText | None = None
    summary: RawText | None = None
    content: RawText | None = None
    authors: tuple[str, ...] = ()
    published: str = ""
    updated: str = ""
    # The parser's own reading of the dates (UTC), used when the raw text is in no format we know.
    published_parsed: datetime | None = None
    updated_parsed: datetime | None = None
    tags: tuple[str, ...] = ()
    enclosures: tuple[Enclosure, ...] = ()


@dataclass(frozen=True, slots=True)
class RawFeed:
    format: str
    title: str = ""
    # The title's media type, as RawText.type: "text/plain" keeps its "<" as characters. Text unless the
    # parser says otherwise, as JSON Feed's title always is.
    title_type: str = "text/plain"
    link: str = ""
    language: str = ""
    ttl: int | None = None
    entries: tuple[RawEntry, ...] = ()
    warning: str = ""


# missing, future, ancient: the date was replaced by the first-seen time; zone: kept, but its zone name
# was ambiguous or unknown, so it was read in the feed's timezone (UTC unless set).
DateFlag = Literal["", "missing", "future", "ancient", "zone"]


@dataclass(frozen=True, slots=True)
class Entry:
    """A normalised, sanitised entry: what the archive stores and every publisher reads."""

    id: str  # the archive's id: see normalize.entry_identity
    key: str
    link: str
    title: str
    author: str
    summary: str
    content: str
    published: datetime
    updated: datetime | None
    date_flag: DateFlag
    tags: tuple[str, ...]
    enclosures: tuple[Enclosure, ...]
    content_hash: str
    # summary and content as the full-text index stores them (fulltext.index_text), computed in the parser
    # processes so that the single archive writer does not have to
    search_body: str = ""
    raw_hash: str = ""  # normalize.raw_fingerprint of what the parser read: see normalize_feed's `known`


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    format: str
    title: str
    link: str
    language: str
    ttl: int | None
    entries: tuple[Entry, ...]
    duplicates: int = 0
    warning: str = ""
    # (id, fingerprint) of the entries normalize_feed left out because the archive holds them as they are
    unchanged: tuple[tuple[str, str], ...] = ()


# --- updating ------------------------------------------------------------------------------------

UpdateStatus = Literal["ok", "not_modified", "unchanged", "error", "gone", "skipped"]


@dataclass(frozen=True, slots=True)
class StoreResult:
    new: int = 0
    updated: int = 0
    new_ids: tuple[str, ...] = ()
    updated_ids: tuple[str, ...] = ()
    warning: str = ""  # the document was read only in part (not well-formed), or not as written: what the parser said


@dataclass(frozen=True, slots=True)
class UpdateOutcome:
    url: str
    category: str
    status: UpdateStatus
    new: int = 0
    updated: int = 0
    error: str = ""
    moved_to: str | None = None
    changed_ids: tuple[str, ...] = field(default=())
    warning: str = ""  # an ok poll of a document read only in part, or not as written
    unstored: bool = False  # the archive could not record this poll (its state there is the previous poll's)


@dataclass(frozen=True, slots=True)
class PollRecord:
    """What one poll of a feed tells the archive. None means "keep what is stored"."""

    url: str
    category: str
    fetched_at: datetime
    status: UpdateStatus
    consecutive_errors: int
    http_status: int | None = None
    error: str = ""
    fetch_url: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    title: str | None = None
    site_url: str | None = None
    format: str | None = None
    ttl: int | None = None
    max_age: int | None = None
    retry_after_until: datetime | None = None
    next_due_at: datetime | None = None
    gone: bool = False
    entries: tuple[Entry, ...] = ()
    unchanged: tuple[tuple[str, str], ...] = ()  # entries the document still carries unchanged (ParsedFeed's)
    # A second attempt to store this same poll, its parser process having died after the first may
    # have committed: what that commit added is still this poll's news.
    retried: bool = False


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """An entry as the archive holds it, with where it came from: what publishers and the site read."""

    id: str
    feed_url: str
    category: str
    key: str
    link: str
    title: str
    author: str
    summary: str
    content: str
    published: datetime
    updated: datetime | None
    date_flag: str
    tags: tuple[str, ...]
    enclosures: tuple[Enclosure, ...]
    content_hash: str
    revision: int
    first_seen: datetime
    last_seen: datetime
    changed_at: datetime | None = None  # when the current revision was stored
    feed_title: str = ""
    feed_site_url: str = ""


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """One feed's row in the archive, for `status` and health reports."""

    url: str
    category: str
    fetch_url: str
    title: str
    last_fetched_at: str | None
    last_status: str
    last_http_status: int | None
    last_error: str
    consecutive_errors: int
    next_due_at: str | None
    gone: bool
    entries: int
