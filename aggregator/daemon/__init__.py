"""The long-running poller: one apscheduler timer per feed, batched polls, debounced republishing.

Owns: the daemon's run loop, signals and reloads (`runner`), its schedule (`schedule`), its debounced
publisher (`publisher`), its publishing and serving (`outputs`) and the lock that keeps one daemon per
archive (`lock`).

May import: every stage and the pipeline; apscheduler (here only).
Never imports: cli.
"""
