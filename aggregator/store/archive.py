"""The SQLite archive (sqlite-utils): feed state, entries, revisions and full-text search.

`Archive` is the one interface the other stages use: `connection` opens it and keeps the writers in turn,
`writes` stores a batch of polls, `reads` answers publishing, `status` and the toolbox.
"""

from __future__ import annotations

from aggregator.store.connection import stored_time
from aggregator.store.reads import ArchiveReads
from aggregator.store.writes import ArchiveWrites

__all__ = ["Archive", "stored_time"]


class Archive(ArchiveWrites, ArchiveReads):
    """The archive database. Open with `Archive.open(path)`; use as a context manager to close it."""
