"""The command line: `aggregator fetch-now`, `daemon`, `publish`, `serve` and the toolbox.

Owns: argument parsing (`commands`, `toolbox`), one-line error reporting, logging set-up (`logsetup`),
the offline demo (`demo`).

May import: every stage, the pipeline and the daemon; click (here only).
Never imports: nothing is off limits here; instead, nothing but `__main__` imports cli.
"""

from aggregator.cli.commands import main

__all__ = ["main"]
