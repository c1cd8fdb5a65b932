"""Timing a network and the machine it runs on, the same way for every ``apical bench``
(docs/performance.md).

A bench compiles once and then times a call a few times from the same state; the fastest run
counts, since on a shared machine the others carry other jobs' load. Beside its wall time it
reports the CPU time it used (this process, and the standalone binaries it started, whose
threads Python's clock does not see), the binary's own wall time where a standalone device
timed it, and the machine's load before and after, which moves every number.

``APICAL_BENCH_BUILD_DIR=dir`` keeps the standalone projects there (to read the generated code);
``APICAL_BENCH_JSON=path`` also writes a bench's results as JSON. A circuit's own bench at several
depths is :func:`apical.circuits.bench.bench_sizes`, built on these.
"""

from __future__ import annotations

import ctypes
import glob
import json
import os
import platform
import resource
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = ["blas_threads", "machine_load", "machine", "children_cpu_seconds", "cpu_seconds", "build_root",
           "binary_seconds", "timed_runs", "category", "profile_ms_per_sample", "write_report"]

BUILD_DIR_VARIABLE = "APICAL_BENCH_BUILD_DIR"
JSON_VARIABLE = "APICAL_BENCH_JSON"


def _openblas():
    """numpy's bundled OpenBLAS thread-count functions (set, get), or None."""
    for path in glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "*openblas*")):
        library = ctypes.CDLL(path)
        for suffix in ("64_", ""):
            setter, getter = f"scipy_openblas_set_num_threads{suffix}", f"scipy_openblas_get_num_threads{suffix}"
            if hasattr(library, setter) and hasattr(library, getter):
                return getattr(library, setter), getattr(library, getter)
    return None


@contextmanager
def blas_threads(n: int) -> Iterator[bool]:
    """Run numpy's BLAS on ``n`` threads inside the block; yields whether that could be set."""
    functions = _openblas()
    if functions is None:
        yield False
        return
    setter, getter = functions
    before = getter()
    setter(ctypes.c_int(n))
    try:
        yield True
    finally:
        setter(ctypes.c_int(before))


def machine_load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def machine() -> dict:
    """The host as a bench report starts with it: platform, cores and the load before timing."""
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "load_before": machine_load()}


def children_cpu_seconds() -> float:
    """User + system time of the finished child processes (a standalone binary, all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children."""
    return time.process_time() + children_cpu_seconds()


@contextmanager
def build_root(prefix: str = "apical-bench-") -> Iterator[Path]:
    """The folder a bench compiles into: $APICAL_BENCH_BUILD_DIR, kept, or a temporary one that is
    removed afterwards."""
    keep = os.environ.get(BUILD_DIR_VARIABLE)
    root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix=prefix))
    root.mkdir(parents=True, exist_ok=True)
    try:
        yield root
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def binary_seconds(device) -> float | None:
    """Wall time of the last run of a standalone binary as its device timed it (None on runtime)."""
    timers = getattr(device, "timers", None)
    return timers.get("run_binary") if isinstance(timers, dict) else None


def timed_runs(call: Callable[[], object], runs: int, samples: int, reset: Callable[[], object] | None = None,
               device=None) -> dict:
    """``call()`` ``runs`` times, each after ``reset()`` (untimed, e.g. restoring the initial state).

    Returns the wall and CPU seconds of every run, the binary's own seconds where ``device`` is a
    standalone device, and the per-sample figures of the fastest run.
    """
    walls, cpus, binaries = [], [], []
    for _ in range(runs):
        if reset is not None:
            reset()
        cpu, started = cpu_seconds(), time.perf_counter()
        call()
        walls.append(time.perf_counter() - started)
        cpus.append(cpu_seconds() - cpu)
        binaries.append(binary_seconds(device))
    best = int(np.argmin(walls))
    return {"samples": samples, "run_seconds": walls, "cpu_seconds": cpus, "binary_seconds": binaries,
            "ms_per_sample": 1e3 * walls[best] / samples, "samples_per_second": samples / walls[best],
            "cpu_ms_per_sample": 1e3 * cpus[best] / samples,
            "binary_ms_per_sample": None if binaries[best] is None else 1e3 * binaries[best] / samples}


def category(name: str, categories: Sequence[tuple[str, str, str]]) -> str:
    """The label of the first (prefix, part, label) whose prefix starts ``name`` and whose part is in
    it; the last entry is the catch-all."""
    for prefix, part, label in categories:
        if name.startswith(prefix) and part in name:
            return label
    return categories[-1][2]


def profile_ms_per_sample(profiling_info: Sequence[tuple[str, float]], categories, samples: int) -> dict[str, float]:
    """A profiled standalone run's (code object, seconds), summed by ``categories`` and given in ms
    per sample, largest first."""
    shares: dict[str, float] = defaultdict(float)
    for name, seconds in profiling_info:
        shares[category(name, categories)] += seconds
    return {label: 1e3 * seconds / samples for label, seconds in sorted(shares.items(), key=lambda kv: -kv[1])}


def write_report(report: dict) -> None:
    """Write ``report`` as JSON to $APICAL_BENCH_JSON, when set."""
    path = os.environ.get(JSON_VARIABLE)
    if path:
        Path(path).write_text(json.dumps(report, indent=2) + "\n")
        print(f"results written to {path}")
