"""The daemon's outputs: republishing what its polls changed (in a thread that may be abandoned at stop),
serving subscribers plus /healthz and /metrics in its own loop, and saying so, loudly and once, when a part
of it degrades and when it recovers."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from aggregator.core.errors import AggregatorError
from aggregator.core.models import Config
from aggregator.daemon.publisher import DebouncedPublisher, in_daemon_thread
from aggregator.serving.metrics import DaemonMetrics, health_app
from aggregator.serving.status import feed_rows
from aggregator.store.archive import Archive

log = logging.getLogger("aggregator.daemon")


class DaemonOutputs:
    """Publishing and serving, for the Daemon (runner.py) that owns these attributes."""

    config: Config
    archive: Archive
    metrics: DaemonMetrics
    publisher: DebouncedPublisher
    stopping: asyncio.Event
    # What the last publish could not publish, and when it failed (time.monotonic): retried until one succeeds.
    _failed_publish: tuple[set[str], set[str], float] | None = None

    def _degrade(self, part: str, why: str) -> None:
        if self.metrics.degrade(part, why):
            what = {
                "archive": "the archive cannot be written, polls back off until it can",
                "publishing": "publishing fails, retried until it succeeds",
            }[part]
            log.error("degraded: %s (/healthz answers 503): %s", what, why, extra={"event": "degraded", "part": part})

    def _recover(self, part: str) -> None:
        if self.metrics.recover(part):
            what = {"archive": "the archive can be written again", "publishing": "publishing works again"}[part]
            log.info("recovered: %s", what, extra={"event": "recovered", "part": part})

    def _publish_from_own_connection(
        self, publish_outputs: Callable[..., object], categories: set[str], entry_ids: set[str]
    ) -> None:
        """Publishing reads through a connection of its own: the shared one may be inside a poll's write
        transaction in another thread, and a second connection reads a consistent snapshot (WAL)."""
        with Archive.open(self.config.settings.database_path) as archive:
            publish_outputs(self.config, archive, categories=categories, entry_ids=entry_ids)

    async def _publish(self, categories: set[str], entry_ids: set[str]) -> None:
        if not self.config.settings.publish:
            return
        from aggregator.publishing.outputs import (
            publish_outputs,  # imported late: publishing pulls in feedgen and jinja2
        )

        if self._failed_publish is not None:  # what a publish that failed could not publish goes with this one
            categories, entry_ids = categories | self._failed_publish[0], entry_ids | self._failed_publish[1]
        started = time.monotonic()
        try:
            # In a thread: rendering is CPU and disk work the polling loop should not wait for; a daemon
            # thread, so that a publish still running past the grace period does not keep the process.
            # Files are written atomically (rename), so a stop mid-publish never leaves a half-written file.
            await in_daemon_thread(
                functools.partial(self._publish_from_own_connection, publish_outputs, categories, entry_ids),
                "publish",
            )
        except Exception as error:
            self.metrics.published(ok=False)
            if isinstance(error, AggregatorError):  # a full disk, a template that fails...
                log.error("republishing failed: %s", error, extra={"event": "publish_failed"})
            else:
                log.exception("republishing failed")
            self._failed_publish = (categories, entry_ids, time.monotonic())
            self._degrade("publishing", str(error) or type(error).__name__)
            return
        self.metrics.published(ok=True)
        self._failed_publish = None
        self._recover("publishing")
        log.info(
            "republished %d categories (%d changed entries) in %.1fs: %s",
            len(categories),
            len(entry_ids),
            time.monotonic() - started,
            ", ".join(sorted(categories)),
            extra={"event": "published"},
        )

    def _rows(self) -> list[dict[str, Any]]:
        return feed_rows(self.config, self.archive.feed_statuses())

    async def health(self) -> dict[str, Any]:
        rows = await asyncio.to_thread(self._rows)
        return self.metrics.health(rows, stopping=self.stopping.is_set())

    async def prometheus(self, accept: str) -> tuple[bytes, str]:
        def read() -> tuple[list[dict[str, Any]], int]:
            return self._rows(), self.archive.count_entries()

        rows, entries = await asyncio.to_thread(read)
        return self.metrics.prometheus(rows, entries, accept)

    async def _start_server(self) -> tuple[asyncio.Event, asyncio.Task[None]]:
        """Serve subscribers (serving.app) plus /healthz and /metrics in this process and loop."""
        from aggregator.serving import app as serving

        settings = self.config.settings
        listener = serving.bind_socket(settings.serve_host, settings.serve_port)  # a busy port: one clear error
        host, port = listener.getsockname()[:2]
        stop = asyncio.Event()
        app = health_app(self.health, self.prometheus, serving.create_app(self.config))
        task = asyncio.create_task(serving.serve(self.config, should_exit=stop, sock=listener, app=app))
        log.info("serving http://%s:%d/ (plus /healthz and /metrics)", host, port, extra={"event": "serving"})
        return stop, task
