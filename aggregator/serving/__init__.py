"""HTTP for subscribers and operators.

Owns: the ASGI app that serves the published feeds and site with ETags, 304s and gzip (`app`), and the
feed rows, health and metrics documents (`metrics`) that `status`, `/healthz` and `/metrics` show.

May import: core; starlette and uvicorn (here only).
Never imports: fetching, parsing, store, publishing: it serves files and documents handed to it.
"""
