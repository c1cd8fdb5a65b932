"""Where a circuit runs: Brian2's runtime device or a standalone project built once.

The device is a run option, never a fork of the circuit code (DESIGN §3): a circuit builds
its objects the same way for every device and asks this module to prepare the device first
and to run what it built.
"""

from __future__ import annotations

import hashlib
import os
import warnings
import tempfile
from pathlib import Path

import brian2
from brian2 import prefs, set_device
from brian2.devices.cpp_standalone.device import CPPStandaloneDevice

DEVICES = {"runtime": "runtime", "cpp": "cpp_standalone", "cuda": "cuda_standalone"}


class DeviceError(RuntimeError):
    """A device could not be prepared (unknown name, missing compiler or package)."""


def brian_device_name(name: str) -> str:
    """Apical's short device name (``runtime``, ``cpp``, ``cuda``) → Brian2's device name."""
    if name in DEVICES.values():
        return name
    try:
        return DEVICES[name]
    except KeyError:
        raise DeviceError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}") from None


PRECISIONS = {"float64": brian2.float64, "float32": brian2.float32}


def prepare_device(name: str, build_dir: str | os.PathLike | None = None, threads: int = 1,
                   precision: str = "float64", build_key: str = ""):
    """Select the device for the objects created next; returns ``(device, project directory)``.

    Each standalone network gets a device instance of its own, so several compiled projects
    (the wake and the sleep network) live side by side in one process and each objects'
    values are read from its own project. ``threads`` = 0 uses every core for OpenMP.
    The project lives in a subfolder of ``build_dir`` named after a digest of ``build_key`` (all
    that the generated code depends on), so a build made with other settings is never reused.
    ``precision`` is the floating-point type of every state variable (float32 halves the memory
    traffic of the per-synapse traces; the exactness tests run in float64).
    """
    device_name = brian_device_name(name)
    if precision not in PRECISIONS:
        raise DeviceError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    prefs.reset_to_defaults()
    prefs.core.default_float_dtype = PRECISIONS[precision]
    if device_name == "runtime":
        set_device("runtime")
        prefs.codegen.target = "numpy"
        return brian2.get_device(), None
    root = Path(build_dir) if build_dir else Path(tempfile.mkdtemp(prefix="apical-build-"))
    digest = hashlib.sha256(f"{build_key}|{device_name}|{threads}|{precision}".encode()).hexdigest()[:12]
    project = root / digest
    project.mkdir(parents=True, exist_ok=True)
    if device_name == "cuda_standalone":
        raise DeviceError("the cuda device is not wired up yet (issue: GPU support); use 'cpp' or 'runtime'")
    # One thread means serial code without OpenMP at all (Brian2: openmp_threads = 0).
    prefs.devices.cpp_standalone.openmp_threads = 0 if threads == 1 else (threads or os.cpu_count() or 1)
    if precision == "float32":
        # Brian2 compares assigned float32 values with 1e50, which overflows the cast; harmless.
        warnings.filterwarnings("ignore", message="overflow encountered in cast", category=RuntimeWarning)
    standalone = CPPStandaloneDevice()
    set_device(standalone, directory=str(project), build_on_run=False)
    return standalone, project


def forget_run_arg_files(standalone: CPPStandaloneDevice, project: Path):
    """Delete a run's argument files: a long training run would otherwise fill the disk."""
    for name in standalone.run_args_arrays:
        for path in (project / "static_arrays" / name, project / "static_arrays" / f"{name}.lock"):
            path.unlink(missing_ok=True)
    standalone.run_args_arrays.clear()
