"""Bytes to normalised entries.

Owns: reading a document (`document`: feedparser, with `fastpath` for well-formed RSS/Atom and `jsonfeed`
for JSON Feed) into `RawFeed`, and the normaliser (`normalize`: identities, dates with their offset,
sanitised HTML, index text) that turns it into `ParsedFeed`.

May import: core; feedparser and lxml (here only).
Never imports: fetching, store, publishing, serving, or any network or database library.
"""
