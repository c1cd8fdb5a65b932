"""Where a circuit runs: Brian2's runtime device or a standalone project built once.

The device is a run option, never a fork of the circuit code (DESIGN §3): a circuit builds
its objects the same way for every device and asks this module to prepare the device first
and to run what it built.
"""

from __future__ import annotations

import os
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


def prepare_device(name: str, build_dir: str | os.PathLike | None = None, threads: int = 0) -> Path | None:
    """Reset Brian2 and select the device; returns the standalone project directory, if any.

    ``threads`` = 0 uses every core for OpenMP in ``cpp_standalone``.
    """
    device_name = brian_device_name(name)
    brian2.device.reinit()
    brian2.device.activate()
    prefs.reset_to_defaults()
    prefs.core.default_float_dtype = brian2.float64
    if device_name == "runtime":
        set_device("runtime")
        prefs.codegen.target = "numpy"
        return None
    project = Path(build_dir) if build_dir else Path(tempfile.mkdtemp(prefix="apical-build-"))
    project.mkdir(parents=True, exist_ok=True)
    if device_name == "cuda_standalone":
        raise DeviceError("the cuda device is not wired up yet (issue: GPU support); use 'cpp' or 'runtime'")
    prefs.devices.cpp_standalone.openmp_threads = threads if threads > 0 else (os.cpu_count() or 1)
    set_device(device_name, directory=str(project), build_on_run=False)
    return project


def is_standalone() -> bool:
    return isinstance(brian2.get_device(), CPPStandaloneDevice)
