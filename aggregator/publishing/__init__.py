"""The archive made public: republished feeds and the static sites, derived from the store.

Owns: feeds out (`feeds`: Atom, RSS and JSON Feed with feedgen; `pages`: RFC 5005 archive pages), the
OPML list of them (`opml_listing`), the Jekyll and plain-HTML sites (`site`, `render`, templates), and
the one call that publishes all of it (`outputs`).

May import: core; store (to read the archive); feedgen and jinja2 (here only).
Never imports: fetching, parsing, serving, or any network library.
"""
