"""One daemon per archive: an exclusive flock on `archive_dir/daemon.lock`.

flock is released by the kernel when the process dies, however it dies, so a crashed daemon never leaves
a stale lock behind. Only daemons take it: `fetch-now`, `publish` and readers keep working beside a
running daemon (SQLite in WAL mode lets them).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType

from aggregator.core.errors import AggregatorError

LOCK_NAME = "daemon.lock"


class DaemonLockedError(AggregatorError):
    """Another daemon already runs on this archive."""


class DaemonLock:
    """Hold with `with DaemonLock(archive_dir):`; raises DaemonLockedError when another process holds it."""

    def __init__(self, archive_dir: Path) -> None:
        self.path = archive_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise AggregatorError(f"{self.path}: cannot create the daemon lock file: {error.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            raise DaemonLockedError(
                f"another aggregator daemon is already running on {self.path.parent}{who}; "
                f"stop it first (lock: {self.path})"
            ) from None
        # The pid is for the message above and for operators; the lock itself is the flock.
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor releases the flock

    def __enter__(self) -> DaemonLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
