"""Files and folders readable by this user only (0600 and 0700), whatever the umask.

Dispa's data files hold the cluster's whole state, ACME account and certificate keys, and
backups: others on the machine must not read them, even when Dispa runs outside systemd
(whose units set ``UMask=0077``) under a permissive umask. ``os.open`` and ``os.mkdir``
apply the umask to the mode they are given, so a mode is never trusted as given: each
file and folder Dispa creates gets an explicit ``fchmod``/``chmod`` right after.

A top-level module that imports only the standard library: the cluster, the edge, the
CLI and the data plane all write data files, and every one of them can import it without
a dependency cycle.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
TEMPORARY_SUFFIX = ".tmp"


def make_private_dir(path: str | os.PathLike, *, tighten: bool = True) -> None:
    """Create ``path`` and any missing parent as 0700 folders.

    ``tighten``: a ``path`` that already exists is set to 0700 too (a data directory made
    by hand with the umask's 0755). Parents that already exist are never changed: they may
    be ``/var/lib`` or a home directory. Pass ``tighten=False`` for a folder the user chose
    to write one file into (a backup's destination), which is not Dispa's to change.
    """
    path = os.path.abspath(os.fspath(path))
    missing = []
    current = path
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, PRIVATE_DIR_MODE)
        except FileExistsError:
            if not os.path.isdir(folder):
                raise
            continue  # made by someone else meanwhile: not ours to change
        os.chmod(folder, PRIVATE_DIR_MODE)
    if tighten and not missing:
        _tighten(path, PRIVATE_DIR_MODE)


def private_opener(path: str, flags: int) -> int:
    """An ``opener`` for ``open()``: a file it creates is 0600, and so is an existing file
    opened for writing with ``O_CREAT`` (left by an older version with the umask's mode)."""
    descriptor = os.open(path, flags | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    if flags & os.O_CREAT:
        try:
            os.fchmod(descriptor, PRIVATE_FILE_MODE)
        except BaseException:
            os.close(descriptor)
            raise
    return descriptor


def private_open(file, mode: str = "r", *args, **kwargs):
    """``open()`` that creates private files; reads pass through unchanged."""
    if any(flag in mode for flag in "wax+") and kwargs.get("opener") is None:
        kwargs["opener"] = private_opener
    return open(file, mode, *args, **kwargs)


def write_private_file(path: str | os.PathLike, data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically, as a 0600 file.

    Written under a unique temporary name in the same folder (created exclusively, so
    never into a file or link someone left there) and renamed into place: a reader sees
    the old file or the new one, never half of one. ``durable``: the data and the rename
    are fsynced before returning, so a crash right after keeps the new file; without it
    (a cache) a crash may leave the old one or none. The folder must exist.
    """
    path = os.fspath(path)
    temporary = f"{path}.{secrets.token_hex(4)}{TEMPORARY_SUFFIX}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    descriptor = private_opener(temporary, flags)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    if durable:
        fsync_dir(os.path.dirname(path) or ".")


def fsync_dir(path: str) -> None:
    """Make a rename in ``path`` durable (best effort where folders cannot be opened)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def tighten_file(path: str | os.PathLike) -> None:
    """Make an existing file 0600 (one a library created with the umask's mode)."""
    _tighten(os.fspath(path), PRIVATE_FILE_MODE)


def tighten_files_in(path: str | os.PathLike) -> None:
    """Make every file directly in the folder ``path`` 0600: what a version that wrote with
    the umask's mode left there. Links are left alone; a missing folder is no error."""
    try:
        entries = os.scandir(path)
    except FileNotFoundError:
        return
    with entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                _tighten(entry.path, PRIVATE_FILE_MODE)


def _tighten(path: str, mode: int) -> None:
    try:
        current = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return
    # A link is left alone: the chmod would change whatever it points to.
    if not stat.S_ISLNK(current.st_mode) and stat.S_IMODE(current.st_mode) != mode:
        os.chmod(path, mode)
