"""Write derived files atomically, and only when their bytes change.

Readers (a web server, a feed reader polling the file, rsync) must never see a half-written file, and an
unchanged file must keep its bytes and mtime so ETag / Last-Modified stay stable and subscribers get 304s.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any


def write_atomic(path: Path, data: bytes, *, follow_symlinks: bool = False) -> bool:
    """Write `data` to `path` via a temp file in the same directory + fsync + rename.

    A file that exists keeps its mode and, where allowed, its owner: feeds.yaml may be 0600 because it
    holds feed passwords. A symlink at `path` is replaced by the file, unless `follow_symlinks` (for the
    operator's own files, such as a linked feeds.yaml): a link planted among published files must not
    lead their writer anywhere else.
    Returns True when the file was written, False when it already held exactly these bytes.
    """
    if follow_symlinks:
        path = Path(os.path.realpath(path))
    link = path.is_symlink()  # replaced as it stands (os.replace renames over the link, not its target)
    if not link and _same_bytes(path, data):
        return False
    temp_name = _write_temp(path, data, link=link, sync=True)
    try:
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    _fsync_directory(path.parent)
    return True


def _write_temp(path: Path, data: bytes, *, link: bool, sync: bool) -> str:
    """A temp file beside `path` holding `data`, with `path`'s mode and owner (0644 for a new file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        before: os.stat_result | None = None if link else path.stat()
    except (FileNotFoundError, NotADirectoryError):
        before = None
    # The temp file lives in the target directory so os.replace is a same-filesystem atomic rename.
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        if before is None:
            os.chmod(temp_name, 0o644)  # mkstemp makes 0600; published files are meant to be read by a web server
        else:
            os.chmod(temp_name, stat.S_IMODE(before.st_mode))
            if (before.st_uid, before.st_gid) != (os.getuid(), os.getgid()):
                with contextlib.suppress(PermissionError):  # only root may give a file away
                    os.chown(temp_name, before.st_uid, before.st_gid)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    return temp_name


def write_text_atomic(path: Path, text: str, *, follow_symlinks: bool = False) -> bool:
    """`write_atomic` for UTF-8 text."""
    return write_atomic(path, text.encode("utf-8"), follow_symlinks=follow_symlinks)


def _same_bytes(path: Path, data: bytes) -> bool:
    try:
        if path.stat().st_size != len(data):
            return False
        return path.read_bytes() == data
    except (FileNotFoundError, NotADirectoryError):
        return False


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable; some platforms (Windows) cannot open a directory, which is fine."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AtomicBatch:
    """Many files written atomically and made durable together: the per-file fsync of `write_atomic`,
    twice per file (the data, then its folder), was most of a first publish's time (72,000 files).

    `write` puts the new bytes in a temp file beside the target (nothing renamed yet; an unchanged file
    is left alone, as by `write_atomic`); `commit` makes every temp file durable at once (one `syncfs`
    per filesystem on Linux; elsewhere one fsync per file), then renames each over its target, then makes
    the renames durable (`syncfs` again, or one fsync per folder). A crash at any point leaves every
    target with its old bytes or its new ones, never a truncated file, as with `write_atomic`; readers
    see the new files only at `commit`. Leaving the `with` block on an exception removes the temp files.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[str, Path]] = []
        self._folders: set[Path] = set()  # folders known to exist

    def __len__(self) -> int:
        return len(self._pending)

    def __enter__(self) -> AtomicBatch:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()

    def write(self, path: Path, data: bytes) -> bool:
        """Stage `data` for `path`; False (nothing staged) when the file already holds exactly these bytes.

        The same checks as `write_atomic` on one lstat: a symlink is replaced as it stands, an existing
        file keeps its mode and owner, a new one is 0644."""
        try:
            before: os.stat_result | None = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            before = None
        if before is not None and stat.S_ISLNK(before.st_mode):
            before = None  # replaced as it stands, like a new file
        elif before is not None and before.st_size == len(data):
            try:
                if path.read_bytes() == data:
                    return False
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                pass
        folder = path.parent
        if folder not in self._folders:
            folder.mkdir(parents=True, exist_ok=True)
            self._folders.add(folder)
        name = os.path.join(folder, f".{path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if before is None:
                    os.chmod(name, 0o644)  # published files are meant to be read by a web server
                else:
                    os.chmod(name, stat.S_IMODE(before.st_mode))
                    if (before.st_uid, before.st_gid) != (os.getuid(), os.getgid()):
                        with contextlib.suppress(PermissionError):  # only root may give a file away
                            os.chown(name, before.st_uid, before.st_gid)
            finally:
                os.close(fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
            raise
        self._pending.append((name, path))
        return True

    def commit(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        try:
            synced = _syncfs({path.parent for _, path in pending})
            if not synced:
                for temp, _ in pending:
                    _fsync_file(temp)
        except BaseException:
            self._pending = pending
            self.abort()
            raise
        for position, (temp, path) in enumerate(pending):
            try:
                os.replace(temp, path)
            except BaseException:
                self._pending = pending[position:]
                self.abort()
                raise
        if not _syncfs({path.parent for _, path in pending}):
            for folder in {path.parent for _, path in pending}:
                _fsync_directory(folder)

    def abort(self) -> None:
        pending, self._pending = self._pending, []
        for temp, _ in pending:
            with contextlib.suppress(OSError):
                os.unlink(temp)


def _fsync_file(name: str) -> None:
    fd = os.open(name, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_libc_syncfs: Any = None


def _syncfs(folders: set[Path]) -> bool:
    """syncfs(2) once per filesystem holding `folders` (Linux); False where it is not available."""
    global _libc_syncfs
    if _libc_syncfs is None:
        _libc_syncfs = False
        if sys.platform.startswith("linux"):
            with contextlib.suppress(OSError, AttributeError):
                libc = ctypes.CDLL(None, use_errno=True)
                _libc_syncfs = libc.syncfs
                _libc_syncfs.argtypes = [ctypes.c_int]
    if not _libc_syncfs:
        return False
    devices: dict[int, Path] = {}
    for folder in folders:
        devices.setdefault(os.stat(folder).st_dev, folder)
    for folder in devices.values():
        fd = os.open(folder, os.O_RDONLY)
        try:
            if _libc_syncfs(fd) != 0:
                error = ctypes.get_errno()
                raise OSError(error, os.strerror(error), str(folder))
        finally:
            os.close(fd)
    return True
