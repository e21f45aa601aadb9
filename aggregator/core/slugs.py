"""Post slugs: readable (CJK kept as is), safe as a file name, bounded, unique per day, stable for ever.

A slug only ever contains Unicode letters, marks, decimal digits and single inner hyphens, so it can never
hold `/`, `.`, `..`, control characters or spaces. That is also exactly the alphabet Jekyll's "pretty"
slugify keeps unchanged, so the URL Jekyll gives a post (`:title`) is the slug we chose, and the plain-HTML
site can put the same page at the same path.

Uniqueness: two entries of the same day with the same slug would share a `_posts/YYYY-MM-DD-<slug>.md`
file (or, in the same category, a page URL). Entries are taken in the order the archive first saw them
(then by id, for entries first seen in the same poll); the first keeps the plain slug and later ones get
`-<first 8 characters of the entry id>`. An entry seen later never takes a slug away from one seen
earlier, and the slug comes from the entry's first title, so a post's URL, once published, stays; the
rule reads only the database, so a rebuild gives the same slugs.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
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
    """What a slug is computed from, and the scopes in which it must be unique."""

    entry_id: str
    title: str  # the entry's first title: a later edit of the title does not move the post
    first_seen: str  # orders entries: earlier ones keep the plain slug
    # e.g. the `_posts` file's day and the (category, URL day) of the page: both name files.
    scopes: tuple[str, ...]


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


def assign_slugs(requests: Iterable[SlugRequest], known: Mapping[str, tuple[str, str]] | None = None) -> dict[str, str]:
    """Unique slugs: no two entries share a slug within any scope they have in common.

    `known` maps entry ids to (title + scopes key, slug) from an earlier run (see `slug_cache_key`): an
    entry whose key is unchanged and whose slug is still free keeps it without recomputing. Entries are
    processed oldest first, so the result is the same as computing everything again, only cheaper.
    """
    taken: dict[str, set[str]] = {}
    slugs: dict[str, str] = {}
    known = known or {}
    for request in sorted(requests, key=lambda r: (r.first_seen, r.entry_id)):
        sets = [taken.setdefault(scope, set()) for scope in request.scopes]
        cached = known.get(request.entry_id)
        if cached is not None and cached[0] == slug_cache_key(request) and not any(cached[1] in s for s in sets):
            slug = cached[1]
        else:
            slug = _first_free(base_slug(request.title, request.entry_id), request.entry_id, sets)
        for used in sets:
            used.add(slug)
        slugs[request.entry_id] = slug
    return slugs


def slug_cache_key(request: SlugRequest) -> str:
    """What a cached slug was computed from: the same key means the same base slug and scopes."""
    return "\x1f".join((request.title, *request.scopes))


def _first_free(base: str, entry_id: str, taken: list[set[str]]) -> str:
    def free(candidate: str) -> bool:
        return not any(candidate in used for used in taken)

    if free(base):
        return base
    suffix_source = clean_slug(entry_id.lower()) or "entry"
    for length in (*SUFFIX_LENGTHS, len(suffix_source)):
        candidate = f"{base}-{suffix_source[:length]}"
        if free(candidate):
            return candidate
    # Two entries can only still collide if their ids do (ids are unique in the archive); count up.
    number = 2
    while not free(f"{base}-{suffix_source}-{number}"):
        number += 1
    return f"{base}-{suffix_source}-{number}"


def ascii_slug(text: str, max_length: int = 64) -> str:
    """Lowercase ASCII words joined by '-', CJK transliterated (中国税务报新闻 -> zhong-guo-shui-wu-bao-xin-wen):
    for identifiers that must stay ASCII, such as category slugs made from OPML folder titles."""
    return slugify(text, max_length=max_length, word_boundary=True, lowercase=True)
