"""The daemon's debounced publisher: one republication per burst of changes, not one per poll; and the
thread a publish runs in."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

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
        self._now = asyncio.Event()  # set by flush: no more waiting for a quiet moment

    @property
    def busy(self) -> bool:
        """Changes wait to be published, or a publish is under way."""
        return bool(self.categories) or (self._task is not None and not self._task.done())

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
            wait = min(self._last + PUBLISH_QUIET, self._first + PUBLISH_MAX_WAIT) - time.monotonic()
            if wait > 0 and not self._now.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._now.wait(), wait)
                continue
            await self._publish_now()

    async def _publish_now(self) -> None:
        categories, entry_ids = self.categories, self.entry_ids
        self.categories, self.entry_ids = set(), set()
        await self._publish(categories, entry_ids)

    async def flush(self) -> None:
        """Publish whatever is pending now, after the publish under way if there is one (at shutdown).
        Cancelling this abandons neither: they go on until the loop ends."""
        self._now.set()
        if self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
        if self.categories:
            await self._publish_now()


def in_daemon_thread(function: Callable[[], T], name: str) -> asyncio.Future[T]:
    """`function()` in a thread of its own, as a future of this loop. Unlike asyncio.to_thread, whose threads
    the loop and the interpreter wait for on exit, a daemon thread still running when the daemon stops is
    abandoned with the process: for work that is safe to cut short (publishing: every file is replaced
    whole, and the next publish redoes what this one did not finish)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():  # its awaiter was cancelled
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        result: T | None = None
        error: BaseException | None = None
        try:
            result = function()
        except BaseException as raised:
            error = raised
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits for it any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future
