"""The shared core: the types every stage speaks and the pure rules they share.

Owns: the domain types (`models`), the error hierarchy (`errors`), schedule decisions (`schedule`), dates,
numbers, slugs, secret redaction, text decoding (`encoding`: BOM, headers, declarations, GB18030/Big5),
the HTML sanitiser (`sanitize`), the full-text index rules (`fulltext`) and atomic file writes (`atomic`).
Decoding and sanitising live here, not in parsing, because fetching (discovery), parsing, the store
(search, history) and publishing all use them.

May import: the standard library and pure libraries (nh3, python-slugify).
Never imports: another subpackage of aggregator, nor any network, database or server library.
"""
