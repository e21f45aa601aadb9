"""The daemon's debounced publisher: one republication per burst of changes, not one per poll."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

PUBLISH_QUIET = 2.0  # republish once nothing has changed for this long...
PUBLISH_MAX_WAIT = 30.0  # ...or this long after the first unpublished change, whichever comes first


class DebouncedPublisher:
    """Collects changed categories and entry ids; calls `publish` once per burst of changes."""

    def __init__(self, publish: Callable[[set[str], set[str]], Awaitable[None]]) -> None:
        self._publish = publish
        self.categories: set[str] = set()
        self.entry_ids: set[str] = set()
        self._first = 0.0
        self._last = 0.0
        self._task: asyncio.Task[None] | None = None

    def add(self, category: str, entry_ids: tuple[str, ...]) -> None:
        now = time.monotonic()
        if not self.categories:
            self._first = now
        self._last = now
        self.categories.add(category)
        self.entry_ids.update(entry_ids)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while self.categories:
            deadline = min(self._last + PUBLISH_QUIET, self._first + PUBLISH_MAX_WAIT)
            if time.monotonic() < deadline:
                await asyncio.sleep(deadline - time.monotonic())
                continue
            await self._publish_now()

    async def _publish_now(self) -> None:
        categories, entry_ids = self.categories, self.entry_ids
        self.categories, self.entry_ids = set(), set()
        await self._publish(categories, entry_ids)

    async def flush(self) -> None:
        """Publish whatever is pending now (at shutdown)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.categories:
            await self._publish_now()
