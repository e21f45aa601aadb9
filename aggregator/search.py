"""Full-text search over every archived entry and every earlier version of it (SQLite FTS5, trigram).

The trigram tokenizer indexes every 3-character window, so it finds words inside Chinese text (which
has no spaces) and parts of words in any language: search is substring search, ranked by bm25. A term
shorter than three characters (the two-character Chinese word 税务, or "AI") has no trigram to look up,
so such terms are matched with LIKE on the same FTS tables: a scan of the plain text, slower but exact.

Query syntax: words separated by spaces, all required; "double quotes" keep a phrase with its spaces.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from .dates import to_utc_text
from .errors import AggregatorError
from .store import Archive

MIN_TRIGRAM = 3
SNIPPET_CHARS = 180
TITLE_WEIGHT = 5.0
_QUERY_PART = re.compile(r'"([^"]*)"?|(\S+)')
SortOrder = Literal["rank", "date"]


class SearchError(AggregatorError):
    """The search query cannot be run (empty, or only punctuation)."""


@dataclass(frozen=True, slots=True)
class SearchHit:
    entry_id: str
    category: str
    feed_url: str
    feed_title: str
    title: str
    link: str
    published: datetime
    score: float  # lower is better (bm25 convention)
    snippet: str
    highlights: tuple[tuple[int, int], ...]  # [start, end) character spans of matches inside `snippet`
    title_highlights: tuple[tuple[int, int], ...]
    revision: int  # the entry's current revision number, or the earlier revision that matched
    in_revision: bool  # True when only an earlier version of the entry matched


@dataclass(frozen=True, slots=True)
class SearchResult:
    terms: tuple[str, ...]
    hits: tuple[SearchHit, ...]
    scanned_terms: tuple[str, ...]  # terms too short for the trigram index, matched by a scan


def parse_query(text: str) -> tuple[str, ...]:
    """Split a query into terms: whitespace separates terms, double quotes keep a phrase together."""
    terms = []
    for phrase, word in _QUERY_PART.findall(text):
        term = " ".join((phrase or word).split())
        if term and term not in terms:
            terms.append(term)
    return tuple(terms)


def _utc_text(value: datetime) -> str:
    return to_utc_text(value if value.tzinfo is not None else value.replace(tzinfo=UTC))


def _like_pattern(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _fts_phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


@dataclass(frozen=True, slots=True)
class _Candidate:
    entry_id: str
    fts_rowid: int
    score: float
    published_utc: str
    revision: int
    in_revision: bool


def _candidates(
    archive: Archive,
    *,
    fts_table: str,
    terms: Sequence[str],
    category: str | None,
    feed_url: str | None,
    since: datetime | None,
    limit: int,
    sort: SortOrder,
) -> list[_Candidate]:
    """Best `limit` matches in one FTS table: entries_fts (current text) or revisions_fts (earlier versions)."""
    long_terms = [t for t in terms if len(t) >= MIN_TRIGRAM]
    short_terms = [t for t in terms if len(t) < MIN_TRIGRAM]
    where: list[str] = []
    params: list[Any] = []
    if long_terms:
        where.append(f"{fts_table} MATCH ?")
        params.append(" AND ".join(_fts_phrase(t) for t in long_terms))
    for term in short_terms:
        where.append(f"({fts_table}.title LIKE ? ESCAPE '\\' OR {fts_table}.body LIKE ? ESCAPE '\\')")
        params.extend([_like_pattern(term)] * 2)
    if category is not None:
        where.append("e.category = ?")
        params.append(category)
    if feed_url is not None:
        where.append("e.feed_url = ?")
        params.append(feed_url)
    if since is not None:
        where.append("e.published_utc >= ?")
        params.append(_utc_text(since))
    if long_terms:
        score = f"bm25({fts_table}, {TITLE_WEIGHT}, 1.0)"
        score_params: list[Any] = []
    else:
        # No trigram term means no bm25: rank by how often the terms occur, title hits counting more.
        counts = []
        for term in short_terms:
            for column, weight in (("title", TITLE_WEIGHT), ("body", 1.0)):
                counts.append(
                    f"{weight} * (length({fts_table}.{column}) - length(replace(lower({fts_table}.{column}), "
                    f"lower(?), ''))) / {len(term)}"
                )
        score = "-(" + " + ".join(counts) + ")"
        score_params = [term for term in short_terms for _column in ("title", "body")]
    if fts_table == "entries_fts":
        source = "entries_fts JOIN entries e ON e.rowid = entries_fts.rowid"
        revision = "e.revision, 0"
    else:
        source = (
            "revisions_fts JOIN entry_revisions r ON r.id = revisions_fts.rowid JOIN entries e ON e.id = r.entry_id"
        )
        revision = "r.revision, 1"
    order = "score, e.published_utc DESC" if sort == "rank" else "e.published_utc DESC, score"
    sql = (
        f"SELECT e.id, {fts_table}.rowid, {score} AS score, e.published_utc, {revision} FROM {source} "
        f"WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ?"
    )
    rows = archive.db.execute(sql, [*score_params, *params, limit]).fetchall()
    return [_Candidate(r[0], r[1], float(r[2]), r[3], r[4], bool(r[5])) for r in rows]


def search(
    archive: Archive,
    query: str,
    *,
    category: str | None = None,
    feed_url: str | None = None,
    since: datetime | None = None,
    limit: int = 20,
    sort: SortOrder = "rank",
) -> SearchResult:
    """The best `limit` entries matching every term of `query`, in their current text or any earlier version.

    An entry appears once: its current text when that matches, else its best-matching earlier revision.
    """
    terms = parse_query(query)
    if not terms:
        raise SearchError("empty search query: give at least one word, e.g. aggregator search 征管改革")
    options: dict[str, Any] = {
        "terms": terms,
        "category": category,
        "feed_url": feed_url,
        "since": since,
        "limit": limit,
        "sort": sort,
    }
    current = _candidates(archive, fts_table="entries_fts", **options)
    earlier = _candidates(archive, fts_table="revisions_fts", **options)
    best: dict[str, _Candidate] = {c.entry_id: c for c in current}
    for candidate in earlier:
        kept = best.get(candidate.entry_id)
        if kept is None or (kept.in_revision and candidate.score < kept.score):
            best[candidate.entry_id] = candidate
    if sort == "rank":
        ranked = sorted(best.values(), key=lambda c: (c.in_revision, c.score, _desc(c.published_utc)))
    else:
        ranked = sorted(best.values(), key=lambda c: (_desc(c.published_utc), c.score))
    chosen = ranked[:limit]
    hits = _hits(archive, chosen, terms)
    return SearchResult(
        terms=terms,
        hits=tuple(hits),
        scanned_terms=tuple(t for t in terms if len(t) < MIN_TRIGRAM),
    )


def _desc(text: str) -> tuple[int, ...]:
    """A sort key that orders ISO timestamps newest first."""
    return tuple(-ord(ch) for ch in text)


def _hits(archive: Archive, chosen: Sequence[_Candidate], terms: Sequence[str]) -> list[SearchHit]:
    """Load title, text and metadata for the chosen matches only (bodies can be large)."""
    if not chosen:
        return []
    texts: dict[tuple[bool, int], tuple[str, str]] = {}
    for in_revision, table in ((False, "entries_fts"), (True, "revisions_fts")):
        rowids = [c.fts_rowid for c in chosen if c.in_revision == in_revision]
        if rowids:
            marks = ",".join("?" * len(rowids))
            for rowid, title, body in archive.db.execute(
                f"SELECT rowid, title, body FROM {table} WHERE rowid IN ({marks})", rowids
            ):
                texts[(in_revision, rowid)] = (title, body)
    entries = {entry.id: entry for entry in archive.entries(ids=[c.entry_id for c in chosen])}
    hits = []
    for candidate in chosen:
        entry = entries.get(candidate.entry_id)
        if entry is None:
            continue
        title, body = texts.get((candidate.in_revision, candidate.fts_rowid), (entry.title, ""))
        snippet, spans = make_snippet(body, terms)
        hits.append(
            SearchHit(
                entry_id=entry.id,
                category=entry.category,
                feed_url=entry.feed_url,
                feed_title=entry.feed_title,
                title=title,
                link=entry.link,
                published=entry.published,
                score=candidate.score,
                snippet=snippet,
                highlights=spans,
                title_highlights=find_spans(title, terms),
                revision=candidate.revision,
                in_revision=candidate.in_revision,
            )
        )
    return hits


def find_spans(text: str, terms: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """Non-overlapping [start, end) spans of every term in `text`, ignoring case."""
    folded = text.lower()
    spans: list[tuple[int, int]] = []
    for term in terms:
        needle = term.lower()
        start = folded.find(needle)
        while start >= 0 and needle:
            spans.append((start, start + len(needle)))
            start = folded.find(needle, start + len(needle))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return tuple(merged)


def make_snippet(
    body: str, terms: Sequence[str], width: int = SNIPPET_CHARS
) -> tuple[str, tuple[tuple[int, int], ...]]:
    """A window of `body` around the first match, with the match spans inside it ('…' marks cuts)."""
    spans = find_spans(body, terms)
    if not spans:
        text = body[:width] + ("…" if len(body) > width else "")
        return text, ()
    first = spans[0][0]
    start = max(0, first - width // 3)
    end = min(len(body), start + width)
    start = max(0, min(start, end - width))
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(body) else ""
    shift = len(prefix) - start
    inside = tuple((s + shift, min(e, end) + shift) for s, e in spans if s >= start and s < end)
    return prefix + body[start:end] + suffix, inside
