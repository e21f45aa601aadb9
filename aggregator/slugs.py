"""Post slugs: readable (CJK kept as is), safe as a file name, bounded, unique per day, stable for ever.

A slug only ever contains Unicode letters, marks, decimal digits and single inner hyphens, so it can never
hold `/`, `.`, `..`, control characters or spaces. That is also exactly the alphabet Jekyll's "pretty"
slugify keeps unchanged, so the URL Jekyll gives a post (`:title`) is the slug we chose, and the plain-HTML
site can put the same page at the same path.

Uniqueness: two entries of the same day with the same slug would share a `_posts/YYYY-MM-DD-<slug>.md`
file. Entries of a day are taken in the order the archive first saw them (then by id, for entries first
seen in the same poll); the first keeps the plain slug and later ones get `-<first 8 characters of the
entry id>`. An entry seen later never takes a slug away from one seen earlier, so a post's URL, once
published, never changes; and the rule reads only the database, so a rebuild gives the same slugs.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from slugify import slugify

# `_posts/YYYY-MM-DD-` (11) + slug + `-<id>` suffix + `.html` stays far below the 255-byte name limit
# of common filesystems and the 200 bytes we promise.
MAX_SLUG_BYTES = 150
SUFFIX_LENGTHS = (8, 16)
# Names Windows refuses for a file whatever its extension; a synced or downloaded archive must survive there.
RESERVED_NAMES = frozenset(
    {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(10)} | {f"lpt{i}" for i in range(10)}
)
_HYPHENS = re.compile(r"-{2,}")


@dataclass(frozen=True, slots=True)
class SlugRequest:
    """What a slug is computed from: the entry's id, its day (in its own offset) and its first title."""

    entry_id: str
    day: str  # YYYY-MM-DD in the source's own offset: the `_posts` file name's date
    title: str
    first_seen: str  # orders entries of a day: earlier ones keep the plain slug


def _keeps(char: str) -> bool:
    """Letters, marks and decimal digits: what Jekyll's `pretty` slugify keeps, and safe in any file name."""
    category = unicodedata.category(char)
    return category[0] in "LM" or category == "Nd"


def _truncate(slug: str, max_bytes: int) -> str:
    """Cut at a hyphen when one is near the end, else at a character boundary; never inside a character."""
    if len(slug.encode("utf-8")) <= max_bytes:
        return slug
    cut = slug.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")
    hyphen = cut.rfind("-")
    if hyphen > len(cut) * 2 // 3:
        cut = cut[:hyphen]
    return cut.strip("-")


def clean_slug(text: str) -> str:
    """Reduce any text to the slug alphabet (possibly empty)."""
    kept = "".join(char if _keeps(char) else "-" for char in text)
    return _HYPHENS.sub("-", kept).strip("-")


def base_slug(title: str, entry_id: str) -> str:
    """The slug a title asks for, before uniqueness: never empty, never a reserved name."""
    slug = clean_slug(slugify(title, allow_unicode=True))
    slug = _truncate(slug, MAX_SLUG_BYTES)
    fallback = clean_slug(entry_id.lower()) or "entry"
    if not slug:
        return fallback
    if slug in RESERVED_NAMES:
        return f"{slug}-{fallback[:8]}"
    return slug


def assign_slugs(requests: Iterable[SlugRequest]) -> dict[str, str]:
    """Unique slugs for entries; uniqueness is per day (the `_posts` file name holds the date)."""
    by_day: dict[str, list[SlugRequest]] = {}
    for request in requests:
        by_day.setdefault(request.day, []).append(request)
    slugs: dict[str, str] = {}
    for day_requests in by_day.values():
        taken: set[str] = set()
        for request in sorted(day_requests, key=lambda r: (r.first_seen, r.entry_id)):
            slug = _first_free(base_slug(request.title, request.entry_id), request.entry_id, taken)
            taken.add(slug)
            slugs[request.entry_id] = slug
    return slugs


def _first_free(base: str, entry_id: str, taken: set[str]) -> str:
    if base not in taken:
        return base
    suffix_source = clean_slug(entry_id.lower()) or "entry"
    for length in (*SUFFIX_LENGTHS, len(suffix_source)):
        candidate = f"{base}-{suffix_source[:length]}"
        if candidate not in taken:
            return candidate
    # Two entries can only still collide if their ids do (ids are unique in the archive); count up.
    number = 2
    while f"{base}-{suffix_source}-{number}" in taken:
        number += 1
    return f"{base}-{suffix_source}-{number}"
