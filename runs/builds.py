"""Shared folders of compiled projects: a run that is handed one reuses the project an earlier
run of the same model compiled there, instead of compiling its own.

A folder holds numbered slots, ``slot-0/``, ``slot-1/``, ..., each with one project per model
(circuits/backend.py names a project after a digest of everything its generated code depends on).
A run holds its slot with an exclusive file lock for as long as it runs, so two runs that share a
folder at the same time never write into one project; the second takes the next free slot.

A reused project compiles nothing when the model generates the same code, byte for byte, in the
new process; circuits/backend.py puts the one part that Brian2 writes in an order of memory
addresses (clock lines of the main source) in name order. Python's hash seed, random in every
process, changes nothing of it: BioGrad's runs in tests/test_faults.py reuse one project without a
single object file rebuilt, and so did the SC microcircuit's and BioLeaF's by hand (PYTHONHASHSEED
1, then 2).
"""

from __future__ import annotations

import fcntl
import time
from pathlib import Path
from typing import IO

#: The hash seed of the sweep's job processes: code generation that followed Python's string
#: hashing would still be the same in every job.
HASH_SEED = "0"


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


def claim_slot(root: Path) -> tuple[Path, IO]:
    """The first slot of ``root`` that no other process holds, and its held lock (close the
    file to give the slot back; a process that dies gives it back too)."""
    slot = 0
    while (held := hold_lock(Path(root) / f"slot-{slot}" / ".lock", wait=None)) is None:
        slot += 1
    return Path(root) / f"slot-{slot}", held
