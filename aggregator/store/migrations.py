"""The archive's schema, as sqlite-utils migrations: each step runs once, in order, in a transaction."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from aggregator.core.fulltext import TOKENIZER, index_text, split_cjk

migrations = Migrations("aggregator")


@migrations()
def m001_initial(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE feeds (
            url TEXT PRIMARY KEY,            -- the URL as written in feeds.yaml: the feed's identity
            category TEXT NOT NULL,          -- category slug from feeds.yaml
            fetch_url TEXT NOT NULL,         -- where it is polled now (differs after a 301/308)
            title TEXT NOT NULL DEFAULT '',  -- the feed's own title, as last parsed
            site_url TEXT NOT NULL DEFAULT '',
            format TEXT NOT NULL DEFAULT '', -- e.g. 'RSS 2.0', 'Atom 1.0', 'JSON Feed 1.1'
            etag TEXT,
            last_modified TEXT,
            body_hash TEXT,                  -- sha256 of the last body parsed: an equal body is not parsed again
            ttl_seconds INTEGER,             -- RSS <ttl>
            max_age_seconds INTEGER,         -- Cache-Control max-age
            last_fetched_at TEXT,            -- UTC, ISO 8601
            last_ok_at TEXT,
            last_status TEXT NOT NULL DEFAULT 'new',   -- new | ok | not_modified | unchanged | error | gone
            last_http_status INTEGER,
            last_error TEXT NOT NULL DEFAULT '',
            consecutive_errors INTEGER NOT NULL DEFAULT 0,
            retry_after_until TEXT,          -- do not poll before this (429/503 Retry-After)
            next_due_at TEXT,                -- when the daemon polls it next
            gone INTEGER NOT NULL DEFAULT 0, -- 1 after HTTP 410: no longer polled
            created_at TEXT NOT NULL
        );

        CREATE TABLE entries (
            id TEXT PRIMARY KEY,             -- 16 hex digits of sha256(feed url, original id)
            feed_url TEXT NOT NULL REFERENCES feeds(url),
            key TEXT NOT NULL,               -- the source's guid/id (else link, else a content hash)
            category TEXT NOT NULL,
            title TEXT NOT NULL,             -- plain text
            link TEXT NOT NULL,
            author TEXT NOT NULL,
            summary TEXT NOT NULL,           -- sanitised HTML
            content TEXT NOT NULL,           -- sanitised HTML
            published TEXT NOT NULL,         -- ISO 8601 in the source's own offset, e.g. 2022-03-16T08:54:16+08:00
            published_utc TEXT NOT NULL,     -- the same instant in UTC, for sorting
            updated TEXT,                    -- ISO 8601 in the source's offset, when the source gave one
            date_flag TEXT NOT NULL DEFAULT '',  -- '' | missing | future | ancient (date replaced by first seen) | zone
            tags TEXT NOT NULL DEFAULT '[]',     -- JSON list: the entry's own categories
            enclosures TEXT NOT NULL DEFAULT '[]',  -- JSON list of {url, type, length}
            content_hash TEXT NOT NULL,
            revision INTEGER NOT NULL DEFAULT 1,  -- 1 + the number of rows in entry_revisions
            first_seen TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            changed_at TEXT NOT NULL,
            UNIQUE (feed_url, key)
        );
        CREATE INDEX entries_category_published ON entries (category, published_utc);
        CREATE INDEX entries_feed_published ON entries (feed_url, published_utc);
        CREATE INDEX entries_published ON entries (published_utc);

        CREATE TABLE entry_revisions (
            id INTEGER PRIMARY KEY,
            entry_id TEXT NOT NULL REFERENCES entries(id),
            revision INTEGER NOT NULL,       -- the revision number this row was while it was current
            title TEXT NOT NULL,
            link TEXT NOT NULL,
            author TEXT NOT NULL,
            summary TEXT NOT NULL,
            content TEXT NOT NULL,
            published TEXT NOT NULL,
            updated TEXT,
            tags TEXT NOT NULL,
            enclosures TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            valid_from TEXT NOT NULL,        -- when this version was first stored
            superseded_at TEXT NOT NULL,     -- when a newer version replaced it
            UNIQUE (entry_id, revision)
        );

        -- Full-text search over titles and the plain text of summary and content, with every CJK
        -- character spaced out so that words are found inside Chinese text (see core/fulltext.py).
        CREATE VIRTUAL TABLE entries_fts USING fts5(title, body, tokenize = 'unicode61 remove_diacritics 2');
        """
    )


def apply_migrations(db: Database) -> None:
    register_index_functions(db)
    migrations.apply(db)


# SQL names of fulltext.split_cjk and fulltext.index_text, for the entry_revisions_search trigger. The trigger
# cannot run on a connection without them, so every writer opens the archive through Archive.open.
SPLIT_CJK_SQL = "aggregator_split_cjk"
INDEX_TEXT_SQL = "aggregator_index_text"


def register_index_functions(db: Database) -> None:
    """Make the index-form conversions callable from SQL on this connection."""
    db.conn.create_function(SPLIT_CJK_SQL, 1, lambda text: split_cjk(text or ""), deterministic=True)
    db.conn.create_function(
        INDEX_TEXT_SQL, 2, lambda summary, content: index_text(summary or "", content or ""), deterministic=True
    )


@migrations()
def m_search_revisions_fts(db: Database) -> None:
    """Full-text search over earlier versions of entries (`aggregator search` looks in both tables).

    rowid = entry_revisions.id; same tokenizer and index form as entries_fts (see core/fulltext.py). The trigger
    copies the revision's title and text from `entries_fts`: the store copies the old version into
    entry_revisions before it replaces that entry's search row, so at that moment entries_fts still holds
    the old version in index form, already converted by Python. When it does not (a writer that changed
    that order), the revision's own title and HTML are converted by the SQL functions registered in
    `register_index_functions`: still findable, never lost.
    """
    db.executescript(
        f"""
        CREATE VIRTUAL TABLE IF NOT EXISTS revisions_fts USING fts5(title, body, tokenize = '{TOKENIZER}');

        CREATE TRIGGER IF NOT EXISTS entry_revisions_search AFTER INSERT ON entry_revisions
        BEGIN
            INSERT INTO revisions_fts (rowid, title, body)
            SELECT new.id,
                COALESCE(current.title, {SPLIT_CJK_SQL}(new.title)),
                COALESCE(current.body, {INDEX_TEXT_SQL}(new.summary, new.content))
            FROM (SELECT 1) LEFT JOIN entries_fts current
                ON current.rowid = (SELECT rowid FROM entries WHERE id = new.entry_id);
        END;
        """
    )
    # Revisions stored before this migration: index them from their title and HTML, converted in Python.
    rows = db.execute("SELECT id, title, summary, content FROM entry_revisions").fetchall()
    db.conn.executemany(
        "INSERT INTO revisions_fts (rowid, title, body) VALUES (?, ?, ?)",
        [(rid, split_cjk(title), index_text(summary, content)) for rid, title, summary, content in rows],
    )


@migrations()
def m_contentless_search(db: Database) -> None:
    """The search tables keep only the index, not a second copy of every entry's text.

    A regular FTS5 table stores each row's text beside its index: as much text again as the entries'
    HTML (a cold benchmark run wrote 100 MB more, and indexing cost 70 µs an entry against 50). Search never
    reads it back (snippets come from the stored HTML, see store/search.py), so the tables become contentless.
    A contentless row is removed with FTS5's 'delete' command and the exact text it was indexed with,
    which the store recomputes from the entry's title and HTML (`index_text`). So both tables are built
    here from the entries themselves, not copied from the old tables (whose text an older version may
    have formed otherwise), and a change to the index form must come with a migration that rebuilds
    them the same way.
    """
    db.executescript(
        f"""
        DROP TRIGGER IF EXISTS entry_revisions_search;

        CREATE VIRTUAL TABLE entries_fts_index USING fts5(title, body, content = '', tokenize = '{TOKENIZER}');
        INSERT INTO entries_fts_index (rowid, title, body)
            SELECT rowid, {SPLIT_CJK_SQL}(title), {INDEX_TEXT_SQL}(summary, content) FROM entries;
        DROP TABLE entries_fts;
        ALTER TABLE entries_fts_index RENAME TO entries_fts;

        CREATE VIRTUAL TABLE revisions_fts_index USING fts5(title, body, content = '', tokenize = '{TOKENIZER}');
        INSERT INTO revisions_fts_index (rowid, title, body)
            SELECT id, {SPLIT_CJK_SQL}(title), {INDEX_TEXT_SQL}(summary, content) FROM entry_revisions;
        DROP TABLE revisions_fts;
        ALTER TABLE revisions_fts_index RENAME TO revisions_fts;

        CREATE TRIGGER entry_revisions_search AFTER INSERT ON entry_revisions
        BEGIN
            INSERT INTO revisions_fts (rowid, title, body)
            VALUES (new.id, {SPLIT_CJK_SQL}(new.title), {INDEX_TEXT_SQL}(new.summary, new.content));
        END;
        """
    )


@migrations()
def m_entry_fingerprints(db: Database) -> None:
    """Each entry keeps a fingerprint of what the parser read (normalize.raw_fingerprint): an entry a
    feed still carries unchanged is then recognised without being sanitised and hashed again. Entries
    stored before have none until their next poll."""
    db.execute("ALTER TABLE entries ADD COLUMN raw_hash TEXT")


@migrations()
def m_ttl_in_seconds(db: Database) -> None:
    """`feeds.ttl_seconds` held the RSS <ttl> as written, in minutes, until the ninth session."""
    db.execute("UPDATE feeds SET ttl_seconds = ttl_seconds * 60 WHERE ttl_seconds IS NOT NULL")
