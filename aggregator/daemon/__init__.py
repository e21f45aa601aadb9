"""The long-running poller: one apscheduler timer per feed, batched polls, debounced republishing.

Owns: the daemon's run loop, signals, reloads and stop (`runner`), its batches of polls (`batches`), its
schedule (`schedule`), its upkeep rounds and recovery (`upkeep`), its debounced publisher (`publisher`), its
publishing, /healthz and /metrics (`outputs`) and the lock that keeps one daemon per archive (`lock`).

May import: every stage and the pipeline; apscheduler (here only).
Never imports: cli.
"""
