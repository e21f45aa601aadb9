"""HTTP: from a URL to bytes, politely.

Owns: the HTTP client (`client`: conditional GET, limits, redirects, per-site politeness), its asyncio
network backend (`backend`), the address rules that keep untrusted URLs off private networks
(`addresses`), registrable domains (`domains`) and feed discovery from a web page (`discover`).

May import: core; httpx and httpcore (here only).
Never imports: parsing, store, publishing, serving, feedparser or any database library.
"""
