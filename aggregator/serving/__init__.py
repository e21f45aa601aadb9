"""HTTP for subscribers and operators.

Owns: the ASGI app that serves the published feeds and site with ETags, 304s and gzip (`app`), the feed
rows `status` and `/healthz` show (`status`), and a running daemon's health and metrics (`metrics`:
`/healthz`, `/metrics`).

May import: core; starlette and uvicorn (`app` only), prometheus-client (`metrics` only).
Never imports: fetching, parsing, store, publishing: it serves files and documents handed to it.
"""
