"""The archive: every entry kept forever, edits as revisions, searchable.

Owns: the SQLite archive (`archive`: opening, the writer's turn, checkpoints; `writes`: a poll's outcome
with its entries and revisions; `reads`: what publishing, status and the toolbox read), the schema and
its migrations (`migrations`), full-text search (`search`), entry history (`history`) and export
(`export`). This is the seam a second storage engine plugs into.

May import: core; sqlite-utils and sqlite3 (here only).
Never imports: fetching, parsing, publishing, serving, feedparser or any network library.
"""
