"""Helpers for the static-archive tests: entries stored through the real Archive into a real SQLite file."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from aggregator.core.models import Config, Entry, PollRecord
from aggregator.parsing.normalize import entry_identity
from aggregator.store.archive import Archive

FEED_URL = "https://source.example.com/feed.xml"


def make_entry(title: str, key: str, published: datetime, content: str = "<p>body</p>", link: str = "") -> Entry:
    return Entry(
        id=entry_identity(FEED_URL, key),
        key=key,
        link=link or f"https://source.example.com/{key}",
        title=title,
        author="",
        summary="",
        content=content,
        published=published,
        updated=None,
        date_flag="",
        tags=(),
        enclosures=(),
        content_hash=hashlib.sha256((title + content).encode()).hexdigest(),
    )


def store(config: Config, entries: list[Entry], category: str, fetched_at: datetime | None = None) -> list[str]:
    """Store `entries` as one poll of FEED_URL; returns the ids of new and changed entries."""
    poll = PollRecord(
        url=FEED_URL,
        category=category,
        fetched_at=fetched_at or datetime(2024, 1, 1, tzinfo=UTC),
        status="ok",
        consecutive_errors=0,
        entries=tuple(entries),
    )
    with Archive.open(config.settings.database_path) as archive:
        result = archive.record([poll])[0]
    return [*result.new_ids, *result.updated_ids]


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def cst(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone(timedelta(hours=8)))  # type: ignore[misc]
