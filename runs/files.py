"""Files that survive a kill: whole-or-nothing writes, and exclusive locks held by a process.

A write goes to a hidden temporary file beside its target, is flushed to disk and renamed over
the target, so a kill leaves the old file or the new one, never a torn one. A lock is an flock
on a file: the kernel gives it back when its holder dies, so a crashed run never leaves a
results directory or a build slot locked (docs/reliability.md).
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import IO

from apical.runs.errors import TrainingError


def write_atomically(path: Path, write) -> None:
    """Write a file whole or not at all: ``write(handle)`` fills a hidden temporary file beside
    ``path``, which is flushed to disk and renamed over ``path``; a kill leaves the old file or the
    new one. A full or read-only disk ends in one line naming the file, with nothing partial left."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.partial")
    try:
        with open(temporary, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as error:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:
            pass
        raise TrainingError(f"cannot write {path}: {error.strerror or error}") from None


def write_text_atomically(path: Path, text: str) -> None:
    write_atomically(path, lambda handle: handle.write(text.encode("utf-8")))


def hold_lock(path: Path, wait: float | None) -> IO | None:
    """An exclusive flock on ``path``: the open file, or None if another process holds it
    (after waiting up to ``wait`` seconds; None: do not wait)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    deadline = time.monotonic() + (wait or 0.0)
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.close()
                return None
            time.sleep(0.1)


def hold_pid_lock(path: Path, what: str) -> IO:
    """:func:`hold_lock` on ``path`` without waiting, with this process's id written into it; a lock
    another process holds raises TrainingError naming ``what`` and that process's id."""
    held = hold_lock(path, wait=None)
    if held is None:
        raise TrainingError(f"{what} is in use by another run (pid {Path(path).read_text().strip()})")
    held.seek(0)
    held.truncate()
    held.write(str(os.getpid()))
    held.flush()
    return held


def release_lock(held: IO) -> None:
    fcntl.flock(held, fcntl.LOCK_UN)
    held.close()
