"""The daemon tests' fixtures (tests/daemon/harness.py): a local feed server, and daemons started in subprocesses."""

from tests.daemon.harness import feed_server, start_daemon

__all__ = ["feed_server", "start_daemon"]
