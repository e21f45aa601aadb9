"""`show` and `history`: one archived entry, every version the archive kept of it, and what changed."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass

from aggregator.core.errors import AggregatorError
from aggregator.core.models import StoredEntry
from aggregator.core.sanitize import html_to_text
from aggregator.store.archive import Archive

MIN_PREFIX = 4
_HEX = re.compile(r"^[0-9a-f]+$")
_BLOCK_END = re.compile(
    r"(</(?:p|div|li|h[1-6]|blockquote|pre|tr|table|ul|ol|dl|dd|dt|figure|figcaption|section|article)>|<br\s*/?>)",
    re.IGNORECASE,
)


class EntryNotFoundError(AggregatorError):
    """No archived entry has that id (or the prefix is ambiguous)."""


@dataclass(frozen=True, slots=True)
class Version:
    """One version of an entry: an earlier one from entry_revisions, or the current one."""

    revision: int
    title: str
    link: str
    author: str
    summary: str
    content: str
    published: str
    updated: str | None
    tags: tuple[str, ...]
    valid_from: str
    superseded_at: str | None  # None for the current version


def resolve_entry_id(archive: Archive, text: str) -> str:
    """The full id of the entry named by `text`: a whole archive id, or a unique prefix of at least 4 digits."""
    wanted = text.strip().lower()
    if not _HEX.match(wanted):
        raise EntryNotFoundError(f"{text!r} is not an entry id (ids are hex digits, e.g. de254b8916e3a40b)")
    row = archive.db.execute("SELECT id FROM entries WHERE id = ?", [wanted]).fetchone()
    if row:
        return str(row[0])
    if len(wanted) < MIN_PREFIX:
        raise EntryNotFoundError(f"no entry {text!r}; give at least {MIN_PREFIX} digits of its id")
    # Ids are hex digits only (checked above), so the prefix holds no LIKE wildcard.
    rows = archive.db.execute("SELECT id FROM entries WHERE id LIKE ? ORDER BY id LIMIT 6", [wanted + "%"]).fetchall()
    if not rows:
        raise EntryNotFoundError(f"no entry with id {text!r} in {archive.path}")
    if len(rows) > 1:
        shown = ", ".join(r[0] for r in rows[:5])
        raise EntryNotFoundError(f"id prefix {text!r} is ambiguous: {shown}{', …' if len(rows) > 5 else ''}")
    return str(rows[0][0])


def load_entry(archive: Archive, text: str) -> StoredEntry:
    entry_id = resolve_entry_id(archive, text)
    for entry in archive.entries(ids=[entry_id]):
        return entry
    raise EntryNotFoundError(f"no entry with id {text!r} in {archive.path}")


def versions(archive: Archive, entry: StoredEntry) -> list[Version]:
    """Every version of `entry`, oldest first; the last is the current one."""
    found = [
        Version(
            revision=row[0],
            title=row[1],
            link=row[2],
            author=row[3],
            summary=row[4],
            content=row[5],
            published=row[6],
            updated=row[7],
            tags=tuple(json.loads(row[8])),
            valid_from=row[9],
            superseded_at=row[10],
        )
        for row in archive.db.execute(
            "SELECT revision, title, link, author, summary, content, published, updated, tags, valid_from, "
            "superseded_at FROM entry_revisions WHERE entry_id = ? ORDER BY revision",
            [entry.id],
        )
    ]
    changed_at = archive.db.execute("SELECT changed_at FROM entries WHERE id = ?", [entry.id]).fetchone()[0]
    found.append(
        Version(
            revision=entry.revision,
            title=entry.title,
            link=entry.link,
            author=entry.author,
            summary=entry.summary,
            content=entry.content,
            published=entry.published.isoformat(),
            updated=entry.updated.isoformat() if entry.updated else None,
            tags=entry.tags,
            valid_from=changed_at,
            superseded_at=None,
        )
    )
    return found


def html_lines(fragment: str) -> list[str]:
    """HTML split after block ends, so a diff shows changed paragraphs rather than one changed line."""
    return [line.strip() for line in _BLOCK_END.sub(r"\1\n", fragment).splitlines() if line.strip()]


def text_lines(fragment: str) -> list[str]:
    """Plain text of HTML, one paragraph per line."""
    return [text for text in (html_to_text(line) for line in html_lines(fragment)) if text]


def version_lines(version: Version, html: bool) -> list[str]:
    """The lines a diff compares: the metadata that can change, then the body."""
    lines = [f"title: {version.title}", f"link: {version.link}", f"author: {version.author}"]
    lines.append(f"published: {version.published}")
    if version.updated:
        lines.append(f"updated: {version.updated}")
    lines.append(f"tags: {', '.join(version.tags)}")
    split = html_lines if html else text_lines
    if version.summary and version.summary != version.content:
        lines += ["", "summary:", *split(version.summary)]
    if version.content:
        lines += ["", "content:", *split(version.content)]
    return lines


def diff_versions(older: Version, newer: Version, html: bool = False, context: int = 3) -> list[str]:
    """A unified diff from `older` to `newer` (plain text by default, the stored HTML with html=True)."""
    return list(
        difflib.unified_diff(
            version_lines(older, html),
            version_lines(newer, html),
            fromfile=f"revision {older.revision} ({older.valid_from})",
            tofile=f"revision {newer.revision} ({newer.valid_from})",
            n=context,
            lineterm="",
        )
    )


def version_json(version: Version) -> dict[str, object]:
    return {
        "revision": version.revision,
        "title": version.title,
        "link": version.link,
        "author": version.author,
        "published": version.published,
        "updated": version.updated,
        "tags": list(version.tags),
        "summary": version.summary,
        "content": version.content,
        "valid_from": version.valid_from,
        "superseded_at": version.superseded_at,
    }
