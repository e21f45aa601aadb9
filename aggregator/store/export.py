"""`aggregator export`: the archive as JSON Lines or CSV on stdout, for other tools (jq, pandas, spreadsheets)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Literal, TextIO

from aggregator.core.models import StoredEntry
from aggregator.store.archive import Archive

ExportFormat = Literal["jsonl", "csv"]
CSV_COLUMNS = (
    "id",
    "category",
    "feed_url",
    "feed_title",
    "key",
    "title",
    "link",
    "author",
    "published",
    "updated",
    "date_flag",
    "tags",
    "enclosures",
    "summary",
    "content",
    "content_hash",
    "revision",
    "first_seen",
    "last_seen",
)


def entry_json(entry: StoredEntry) -> dict[str, object]:
    """An entry as JSON-ready data: dates in ISO 8601, `published`/`updated` in the source's own offset."""
    return {
        "id": entry.id,
        "category": entry.category,
        "feed_url": entry.feed_url,
        "feed_title": entry.feed_title,
        "key": entry.key,
        "title": entry.title,
        "link": entry.link,
        "author": entry.author,
        "published": entry.published.isoformat(),
        "updated": entry.updated.isoformat() if entry.updated else None,
        "date_flag": entry.date_flag,
        "tags": list(entry.tags),
        "enclosures": [{"url": e.url, "type": e.type, "length": e.length} for e in entry.enclosures],
        "summary": entry.summary,
        "content": entry.content,
        "content_hash": entry.content_hash,
        "revision": entry.revision,
        "first_seen": entry.first_seen.isoformat(),
        "last_seen": entry.last_seen.isoformat(),
    }


def selected_entries(archive: Archive, category: str | None, since: datetime | None) -> Iterator[StoredEntry]:
    """Entries newest first, stopping at the first one published before `since` (naive means UTC)."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    for entry in archive.entries(category=category):
        if since is not None and entry.published < since:
            return  # newest first: every later entry is older still
        yield entry


def spreadsheet_cell(value: object) -> object:
    """A cell a spreadsheet shows as text: one starting like a formula (=, +, -, @, or a tab or carriage
    return before one) gets a leading apostrophe, which spreadsheets hide (OWASP's CSV injection advice)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def write_export(
    archive: Archive,
    out: TextIO,
    fmt: ExportFormat,
    category: str | None,
    since: datetime | None,
    *,
    spreadsheet: bool = False,
) -> int:
    """Write the selected entries to `out`; returns how many were written. `spreadsheet` (CSV only) is
    for Excel and its kind: a UTF-8 byte order mark first, so CJK text is read as UTF-8, and no cell
    that would run as a formula."""
    count = 0
    if fmt == "jsonl":
        for entry in selected_entries(archive, category, since):
            out.write(json.dumps(entry_json(entry), ensure_ascii=False) + "\n")
            count += 1
        return count
    # Lists (tags, enclosures) are JSON inside their CSV cell: unambiguous whatever the tags contain.
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    if spreadsheet:
        out.write("\ufeff")
    writer.writeheader()
    for entry in selected_entries(archive, category, since):
        row = entry_json(entry)
        row["tags"] = json.dumps(row["tags"], ensure_ascii=False)
        row["enclosures"] = json.dumps(row["enclosures"], ensure_ascii=False)
        writer.writerow({key: spreadsheet_cell(value) for key, value in row.items()} if spreadsheet else row)
        count += 1
    return count
