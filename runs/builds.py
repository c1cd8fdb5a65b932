"""Shared folders of compiled projects: a run that is handed one reuses the project an earlier
run of the same model compiled there, instead of compiling its own.

A folder holds numbered slots, ``slot-0/``, ``slot-1/``, ..., each with one project per model
(circuits/backend.py names a project after a digest of everything its generated code depends on).
A run holds its slot with an exclusive file lock for as long as it runs, so two runs that share a
folder at the same time never write into one project; the second takes the next free slot.
``apical evaluate`` compiles into the slots of a private cache (:func:`evaluation_builds`), never
into a results directory, so a second evaluation of the same model compiles nothing.

A reused project compiles nothing when the model generates the same code, byte for byte, in the
new process; circuits/backend.py puts the one part that Brian2 writes in an order of memory
addresses (clock lines of the main source) in name order. Python's hash seed, random in every
process, changes nothing of it: BioGrad's runs in tests/test_faults.py reuse one project without a
single object file rebuilt, and so did the SC microcircuit's and BioLeaF's by hand (PYTHONHASHSEED
1, then 2).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from apical.runs.files import hold_lock

#: The hash seed of the sweep's job processes: code generation that followed Python's string
#: hashing would still be the same in every job.
HASH_SEED = "0"

#: Where ``apical evaluate`` keeps its compiled projects, if set; else $XDG_CACHE_HOME/apical/builds
#: (~/.cache/apical/builds). Deleting the folder only costs the next evaluation a compile.
BUILD_CACHE_ENV = "APICAL_BUILD_CACHE"


def claim_slot(root: Path) -> tuple[Path, IO]:
    """The first slot of ``root`` that no other process holds, and its held lock (close the
    file to give the slot back; a process that dies gives it back too)."""
    slot = 0
    while (held := hold_lock(Path(root) / f"slot-{slot}" / ".lock", wait=None)) is None:
        slot += 1
    return Path(root) / f"slot-{slot}", held


def evaluation_builds() -> Path:
    """The private cache of compiled projects that ``apical evaluate`` reuses (:data:`BUILD_CACHE_ENV`)."""
    if os.environ.get(BUILD_CACHE_ENV):
        return Path(os.environ[BUILD_CACHE_ENV]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return cache / "apical" / "builds"
