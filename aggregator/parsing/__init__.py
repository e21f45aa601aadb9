"""Bytes to normalised entries.

Owns: reading a document (`document`: feedparser, with `fastpath` for well-formed RSS/Atom and `jsonfeed`
for JSON Feed) into `RawFeed`, and the normaliser (`normalize`: identities, dates with their offset,
sanitised HTML, index text) that turns it into `ParsedFeed`. And a web page's article (groundwork for
full-article capture, not yet called by polling): `article_page` decodes the page (its <meta> charset too),
parses it once and prepares the tree; `article` extracts the article (trafilatura, readability-lxml, or a
feed's CSS selectors), tidies its ends and sanitises it, and says whether a feed's own text `looks_truncated`.

May import: core; feedparser, lxml, trafilatura, readability-lxml and cssselect (here only).
Never imports: fetching, store, publishing, serving, or any network or database library.
"""
