"""Crash-safe file handling: atomic writes, checksums, exclusive locks, disk checks.

Everything a run or a sweep leaves behind is written to a temporary file in the same directory
and renamed over the target, so a process killed at any moment leaves either the old file or
the new one, never half of one. Locks are `fcntl.flock` locks: the kernel drops them when their
holder dies, so a killed sweep never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from ..errors import UserError

# OSError numbers that mean "no room left" rather than a permission or path problem.
_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
# Temporary files are created private (0600); the renamed result gets the mode a plain open()
# would have given it, so results stay readable by whoever could read them before.
UMASK = os.umask(0)
os.umask(UMASK)
_FILE_MODE = 0o666 & ~UMASK


def fsync_dir(path: Path) -> None:
    """Flush a directory entry (a rename into it) to disk; a no-op where unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed over `path`.

    For writers that want a file name (matplotlib, pyarrow). The temporary name keeps the
    suffix, because some writers pick the format from it. On failure it is removed.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as handle:  # flush to disk before the rename makes it visible
            os.fchmod(handle.fileno(), _FILE_MODE)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a file."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path, text: str) -> None:
    """Write text via a temporary file and rename (see `atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode())


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_disk_full(err: OSError) -> bool:
    """Whether an OSError means the disk (or the user's quota) is full."""
    return err.errno in _FULL


def describe_os_error(err: OSError, doing: str) -> str:
    """One line for an OSError hit while `doing` something ("writing checkpoint step 20")."""
    where = f" ({err.filename})" if err.filename else ""
    if is_disk_full(err):
        return f"disk full while {doing}{where}"
    return f"{doing} failed{where}: {err.strerror or err}"


def check_writable(directory: Path) -> None:
    """Create, write and remove a probe file in `directory`; a UserError naming it if that fails."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".write-test-")
        try:
            os.write(fd, b"probe")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as err:
        reason = "disk full" if is_disk_full(err) else (err.strerror or str(err))
        raise UserError(f"cannot write to {str(directory)!r}: {reason}") from None


def check_free_space(directory: Path, needed: int, what: str) -> None:
    """A UserError if the file system of `directory` has less than `needed` bytes free."""
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise UserError(f"not enough free space in {str(directory)!r}: {_mib(free)} free, about {_mib(needed)} "
                        f"needed for {what}; free some space or lower train.keep_checkpoints")


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


# Locks this process holds, by resolved path: (file descriptor, depth). A second flock on a
# fresh descriptor of the same file would conflict with our own lock, so nested use (a command
# that locks a sweep and then runs it) must reuse the descriptor.
_HELD: dict[str, list[int]] = {}


@contextlib.contextmanager
def exclusive_lock(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (created if missing), or fail at once.

    The holder's PID is written into the file, so the refusal can name it. `what` names the
    locked thing in the message ("sweep directory 'sweeps/x'"). Re-entrant within a process.
    """
    path = Path(path)
    key = str(path.resolve())
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield
        finally:
            _HELD[key][1] -= 1
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise UserError(f"cannot create lock file {str(path)!r}: {err.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise UserError(f"{what} is in use by another lengthgen process (PID {holder}); wait for it to finish "
                            "or stop it") from None
        raise UserError(f"cannot lock {str(path)!r}: {err.strerror}") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _HELD[key] = [fd, 1]
        yield
    finally:
        _HELD.pop(key, None)
        os.close(fd)  # closing the descriptor releases the lock


@contextlib.contextmanager
def waiting_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file `path`, waiting for it: for short read-modify-write
    sections that two processes may enter at once (an evaluation appending to a run's eval.csv
    while that run trains)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
