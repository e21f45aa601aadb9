"""Write derived files atomically, and only when their bytes change.

Readers (a web server, a feed reader polling the file, rsync) must never see a half-written file, and an
unchanged file must keep its bytes and mtime so ETag / Last-Modified stay stable and subscribers get 304s.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path


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
            os.fsync(handle.fileno())
        if before is None:
            os.chmod(temp_name, 0o644)  # mkstemp makes 0600; published files are meant to be read by a web server
        else:
            os.chmod(temp_name, stat.S_IMODE(before.st_mode))
            if (before.st_uid, before.st_gid) != (os.getuid(), os.getgid()):
                with contextlib.suppress(PermissionError):  # only root may give a file away
                    os.chown(temp_name, before.st_uid, before.st_gid)
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    _fsync_directory(path.parent)
    return True


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
