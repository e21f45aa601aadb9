"""Full-text search over every archived entry and every earlier version of it (SQLite FTS5, unicode61).

The index holds words, with every Chinese/Japanese/Korean character spaced out as a word of its own
(see core/fulltext.py), so every term goes through the index: a CJK term of any length (征管改革, 税务, 税)
is looked up as a phrase of single characters and found inside a sentence; a Latin term is matched as
a whole word, ignoring case and diacritics (cafe finds Café). Results are ranked by bm25, a title match
counting more than a body match.

Query syntax: words separated by spaces, all required; "double quotes" keep a phrase (its words next to
each other, punctuation between them ignored); a trailing * makes the last word a prefix (archiv* finds
archive and archiving). Snippets and highlights are computed on the stored text, not the index form.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from aggregator.core.dates import to_utc_text
from aggregator.core.errors import AggregatorError
from aggregator.core.fulltext import phrase, split_cjk
from aggregator.core.sanitize import html_to_text
from aggregator.store.archive import Archive

SNIPPET_CHARS = 180
TITLE_WEIGHT = 5.0
_QUERY_PART = re.compile(r'"([^"]*)"?|(\S+)')
# A run of letters, digits and combining marks (what unicode61 keeps as a word); split_cjk then cuts CJK
# runs into characters. Marks: Latin/Greek/Cyrillic diacritics, Hebrew, Arabic, Indic and Thai blocks, kana voicing.
_WORD_RUN = re.compile(
    "(?:[^\\W_]|[\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0670"
    "\u0900-\u0e7f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\u3099\u309a\ufe20-\ufe2f])+"
)
_DIACRITICS = re.compile("[\u0300-\u036f]")
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
    terms: tuple[str, ...]  # the terms searched for
    hits: tuple[SearchHit, ...]
    ignored_terms: tuple[str, ...]  # terms without a letter or digit (e.g. "#"): nothing the index can look up


@dataclass(frozen=True, slots=True)
class Query:
    """A query as terms: each group must match (by any one of its terms: `a OR b`), no excluded term may."""

    groups: tuple[tuple[_Term, ...], ...]
    excluded: tuple[_Term, ...]
    ignored: tuple[str, ...]

    @property
    def terms(self) -> tuple[_Term, ...]:
        return tuple(term for group in self.groups for term in group)

    def fts(self) -> str:
        groups = [
            group[0].fts() if len(group) == 1 else "(" + " OR ".join(t.fts() for t in group) + ")"
            for group in self.groups
        ]
        return " AND ".join(groups) + "".join(f" NOT {term.fts()}" for term in self.excluded)


def parse_query(text: str) -> Query:
    """A query's terms: whitespace separates them, double quotes keep a phrase together, a term given
    twice counts once; and the operators people type: `a OR b`, `NOT a` or `-a` to exclude, `AND` (what
    every search does anyway). Operators count in capitals and outside quotes."""
    groups: list[list[_Term]] = []
    excluded: list[_Term] = []
    ignored: list[str] = []
    joining = negating = False
    for quoted, word in _QUERY_PART.findall(text):
        if not quoted and word in ("AND", "OR", "NOT"):
            joining, negating = (word == "OR" and bool(groups)), word == "NOT"
            continue
        if not quoted and word.startswith("-") and len(word) > 1:
            negating, word = True, word[1:]
        term = _Term.parse(" ".join((quoted or word).split()))
        if not term.text:
            continue
        if not term.words:
            ignored.append(term.text)
        elif negating:
            excluded.append(term)
        elif joining:
            groups[-1].append(term)
        elif all(term != other for group in groups for other in group):
            groups.append([term])
        joining = negating = False
    return Query(tuple(tuple(group) for group in groups), tuple(excluded), tuple(ignored))


def _fold(word: str) -> str:
    """A word as unicode61 with remove_diacritics compares it: lower case, accents dropped."""
    lowered = word.lower()
    if lowered.isascii():
        return lowered
    # Only the diacritics Latin, Greek and Cyrillic letters decompose into: unicode61 keeps が apart from か.
    return _DIACRITICS.sub("", unicodedata.normalize("NFD", lowered))


def _words(text: str) -> list[tuple[int, int, str]]:
    """The index's words of `text` with their [start, end) positions: letter/digit runs, CJK characters alone."""
    words = []
    for run in _WORD_RUN.finditer(text):
        at = run.start()
        for piece in split_cjk(run.group()).split():
            words.append((at, at + len(piece), piece))
            at += len(piece)
    return words


@dataclass(frozen=True, slots=True)
class _Term:
    text: str  # as typed
    words: tuple[str, ...]  # its words, in order, as typed
    prefix: bool  # trailing *: the last word may be the beginning of a longer word

    @classmethod
    def parse(cls, text: str) -> _Term:
        core = text.rstrip("*")
        return cls(text, tuple(word for _s, _e, word in _words(core)), prefix=core != text)

    def fts(self) -> str:
        """This term as an FTS5 phrase of its words (the tokenizer folds case and diacritics itself)."""
        return phrase(" ".join(self.words)) + ("*" if self.prefix else "")


def _utc_text(value: datetime) -> str:
    return to_utc_text(value if value.tzinfo is not None else value.replace(tzinfo=UTC))


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
    query: Query,
    category: str | None,
    feed_url: str | None,
    since: datetime | None,
    limit: int,
    sort: SortOrder,
) -> list[_Candidate]:
    """Best `limit` matches in one FTS table: entries_fts (current text) or revisions_fts (earlier versions)."""
    where = [f"{fts_table} MATCH ?"]
    params: list[Any] = [query.fts()]
    if category is not None:
        where.append("e.category = ?")
        params.append(category)
    if feed_url is not None:
        where.append("e.feed_url = ?")
        params.append(feed_url)
    if since is not None:
        where.append("e.published_utc >= ?")
        params.append(_utc_text(since))
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
        f"SELECT e.id, {fts_table}.rowid, bm25({fts_table}, {TITLE_WEIGHT}, 1.0) AS score, e.published_utc, "
        f"{revision} FROM {source} WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ?"
    )
    rows = archive.db.execute(sql, [*params, limit]).fetchall()
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
    parsed = parse_query(query)
    if not parsed.groups and not parsed.excluded and not parsed.ignored:
        raise SearchError("empty search query: give at least one word, e.g. aggregator search 征管改革")
    if not parsed.groups and parsed.excluded:
        raise SearchError(f"nothing to search for in {query!r}: excluding words needs a word to find as well")
    if not parsed.groups:
        raise SearchError(f"nothing to search for in {query!r}: give at least one letter or digit")
    terms, ignored = parsed.terms, parsed.ignored
    options: dict[str, Any] = {
        "query": parsed,
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
    hits = _hits(archive, ranked[:limit], [term.text for term in terms])
    return SearchResult(terms=tuple(term.text for term in terms), hits=tuple(hits), ignored_terms=ignored)


def _desc(text: str) -> tuple[int, ...]:
    """A sort key that orders ISO timestamps newest first."""
    return tuple(-ord(ch) for ch in text)


def _revision_texts(archive: Archive, revision_ids: Sequence[int]) -> dict[int, tuple[str, str, str]]:
    """Title, summary and content of earlier versions (rowid of revisions_fts = entry_revisions.id)."""
    if not revision_ids:
        return {}
    marks = ",".join("?" * len(revision_ids))
    rows = archive.db.execute(
        f"SELECT id, title, summary, content FROM entry_revisions WHERE id IN ({marks})", list(revision_ids)
    )
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


def _hits(archive: Archive, chosen: Sequence[_Candidate], terms: Sequence[str]) -> list[SearchHit]:
    """Load title, text and metadata for the chosen matches only (bodies can be large).

    Snippets come from the stored title and HTML (as plain text), never from the index's spaced-out form."""
    if not chosen:
        return []
    revisions = _revision_texts(archive, [c.fts_rowid for c in chosen if c.in_revision])
    entries = {entry.id: entry for entry in archive.entries(ids=[c.entry_id for c in chosen])}
    hits = []
    for candidate in chosen:
        entry = entries.get(candidate.entry_id)
        if entry is None:
            continue
        title, summary, content = (
            revisions.get(candidate.fts_rowid, (entry.title, "", ""))
            if candidate.in_revision
            else (entry.title, entry.summary, entry.content)
        )
        body = " ".join(part for part in (html_to_text(summary), html_to_text(content)) if part)
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
    """Non-overlapping [start, end) spans in `text` where a term matches as the index matches it: whole
    words (a trailing * allows a longer last word), ignoring case and diacritics, CJK character by character."""
    words = [(start, end, _fold(word)) for start, end, word in _words(text)]
    spans: list[tuple[int, int]] = []
    for term in map(_Term.parse, terms):
        size = len(term.words)
        if not size:
            continue
        *exact, last = map(_fold, term.words)
        for at in range(len(words) - size + 1):
            window = words[at : at + size]
            if [w for _s, _e, w in window[:-1]] != exact:
                continue
            tail = window[-1][2]
            if tail == last or (term.prefix and tail.startswith(last)):
                spans.append((window[0][0], window[-1][1]))
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
