"""Where a circuit runs: Brian2's runtime device or a standalone project built once.

The device is a run option, never a fork of the circuit code: a circuit builds its objects the
same way for every device, and the core it runs on (circuits/core.py, ``CompiledNetwork``) asks
this module to prepare the device first and to forget each run's argument files after it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import brian2
from brian2 import NeuronGroup, defaultclock, prefs, set_device
from brian2.devices.cpp_standalone.device import CPPStandaloneDevice
from brian2.devices.device import RuntimeDevice


@dataclass(frozen=True)
class Device:
    """A value of ``run.device`` and ``--device``."""

    name: str
    brian_name: str | None  # Brian2's device; None: no Brian2 at all (a framework's batched numpy form)


#: Every device, in the order the command line lists them: C++ standalone (compiled once per
#: model), brian2cuda (docs/gpu.md), Brian2's runtime device (numpy code generation, nothing
#: compiled) and a framework's batched numpy form, equal to its Brian2 network. The choices of
#: run.device, of every --device and a framework's default devices (circuits/framework.py) read it.
DEVICES = {device.name: device for device in (
    Device("cpp", "cpp_standalone"),
    Device("cuda", "cuda_standalone"),
    Device("runtime", "runtime"),
    Device("numpy", None),
)}

#: The devices that run a Brian2 network (every framework runs on these; "numpy" only where it has
#: a numpy form).
BRIAN_DEVICES = tuple(name for name, device in DEVICES.items() if device.brian_name is not None)


class DeviceError(RuntimeError):
    """A device could not be prepared (unknown name, missing compiler or package)."""


def brian_device_name(name: str) -> str:
    """Apical's short device name (``cpp``, ``cuda``, ``runtime``) → Brian2's device name."""
    if name in {DEVICES[short].brian_name for short in BRIAN_DEVICES}:
        return name
    if name not in BRIAN_DEVICES:
        raise DeviceError(f"unknown Brian2 device {name!r}; choose one of {', '.join(BRIAN_DEVICES)}")
    return DEVICES[name].brian_name


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
    capability = cuda_compute_capability() if device_name == "cuda_standalone" else None
    target = f"sm_{capability}" if capability else f"threads={threads}"
    digest = hashlib.sha256(f"{build_key}|{device_name}|{target}|{precision}".encode()).hexdigest()[:12]
    project = root / digest
    project.mkdir(parents=True, exist_ok=True)
    if precision == "float32":
        # Brian2 compares assigned float32 values with 1e50, which overflows the cast; harmless.
        warnings.filterwarnings("ignore", message="overflow encountered in cast", category=RuntimeWarning)
    if device_name == "cuda_standalone":
        cuda = prepare_cuda(project, capability)
        set_device(cuda, directory=str(project), build_on_run=False)
        return cuda, project
    # One thread means serial code without OpenMP at all (Brian2: openmp_threads = 0).
    prefs.devices.cpp_standalone.openmp_threads = 0 if threads == 1 else (threads or os.cpu_count() or 1)
    standalone = apical_standalone(CPPStandaloneDevice)()
    set_device(standalone, directory=str(project), build_on_run=False)
    return standalone, project


def select_runtime(precision: str = "float64") -> None:
    """Make Brian2's runtime device (numpy code generation) current again, in ``precision``, without
    resetting other preferences: a runtime network may be built after a standalone one in a process."""
    if not isinstance(brian2.get_device(), RuntimeDevice):
        set_device("runtime")
    prefs.codegen.target = "numpy"
    prefs.core.default_float_dtype = PRECISIONS[precision]


# ------------------------------------------------------------------------------ clocks of long runs
# The circuits run their sample and minibatch boundaries on clocks of dt = T·dt and M·T·dt beside
# the step clock. Brian2 2.10.1's standalone scheduler (templates/network.cpp, and brian2cuda's
# network.cu, Network::next_clocks) lets two clocks tick together when their times differ by at
# most an absolute 1e-14 s. The step clock computes t = (k·T)·dt and the sample clock t = k·(T·dt);
# the two roundings can differ by one ulp, which exceeds 1e-14 s from t = 64 s on (sample 641 of
# a run at T = 20, dt = 5 ms). The sample clock then ticks on its own, after the step it should
# open, and the boundary updates land one step late. A tolerance relative to t removes that; it
# is the same test as before for t ≤ 1 s.
ABSOLUTE_CLOCK_MATCH = "fabs(s-t)<=Clock_epsilon)"
RELATIVE_CLOCK_MATCH = "fabs(s-t)<=Clock_epsilon*fmax(1.0, fabs(t)))"
NETWORK_SOURCES = ("network.cpp", "network.cu")


def relative_clock_match(source: str) -> str:
    """The network source with the relative tolerance between clocks (see above)."""
    if ABSOLUTE_CLOCK_MATCH not in source:
        raise DeviceError("Brian2's network source no longer has the clock comparison Apical corrects "
                          f"({ABSOLUTE_CLOCK_MATCH!r}); check circuits/backend.py against this Brian2 version")
    return source.replace(ABSOLUTE_CLOCK_MATCH, RELATIVE_CLOCK_MATCH)


# ------------------------------------------------------------------------------ the same main source
# Brian2 writes two kinds of lines of the main source in the order of a Python set of clock
# objects, an order of memory addresses that differs from process to process: the setting of
# each clock's timestep, t and dt before a run, and the clocks that join the network without code
# (network.add(&clock, NULL)). Two processes that build the same model then write different
# sources, and a project reused by a later run (a sweep's jobs, apical train --build-dir)
# recompiles main every time. Either kind of line may run in any order of clocks (each sets a
# clock's own variables; a clock without code runs nothing), so each run of them is sorted by
# clock name, stably (one clock's assignments keep their order), which gives one source.
COMMUTING_LINES = (re.compile(r"^\s*_array_(\w+?clock)_(?:timestep|t|dt)\[0\] = [^;]*;$"),
                   re.compile(r"^\s*\w+\.add\(&(\w+), NULL\);$"))
MAIN_SOURCES = ("main.cpp", "main.cu")


def clock_settings_in_name_order(source: str) -> str:
    """The main source with every run of consecutive lines of one kind of :data:`COMMUTING_LINES`
    sorted by the clock they name."""
    ordered, run, kind = [], [], None
    for line in [*source.split("\n"), None]:
        matching = next((pattern for pattern in COMMUTING_LINES if line is not None and pattern.match(line)), None)
        if matching is not None and matching is kind:
            run.append(line)
            continue
        ordered.extend(sorted(run, key=lambda text: kind.match(text).group(1)))
        run, kind = ([line], matching) if matching is not None else ([], None)
        if matching is None and line is not None:
            ordered.append(line)
    return "\n".join(ordered)


@functools.cache
def apical_standalone(device_class):
    """A subclass of a standalone device class whose generated network source compares clock times
    with :func:`relative_clock_match`, and whose main source sets clocks in name order
    (:func:`clock_settings_in_name_order`); one class per device class."""
    corrections = {**dict.fromkeys(NETWORK_SOURCES, relative_clock_match),
                   **dict.fromkeys(MAIN_SOURCES, clock_settings_in_name_order)}

    def corrected(generate):
        def method(self, writer, *args, **kwargs):
            write = writer.write

            def patched(filename, contents):
                write(filename, corrections[filename](contents) if filename in corrections else contents)

            writer.write = patched  # CPPWriter.write writes the .cpp (and .cu) sources through self.write
            try:
                generate(self, writer, *args, **kwargs)
            finally:
                writer.write = write
        return method

    class ApicalStandalone(device_class):
        generate_network_source = corrected(device_class.generate_network_source)
        generate_main_source = corrected(device_class.generate_main_source)

    ApicalStandalone.__name__ = ApicalStandalone.__qualname__ = f"Apical{device_class.__name__}"
    return ApicalStandalone


# ------------------------------------------------------------------------------ CUDA (brian2cuda)
# brian2cuda 1.0b1 was written for CUDA 11; with CUDA 12/13 it builds through preferences alone:
# C++17 for nvcc and the host compiler, curand found and linked, and the GPU architecture chosen
# by us rather than by brian2cuda's detection (which needs deviceQuery).

CUDA_ARCH_ENV = "APICAL_CUDA_COMPUTE_CAPABILITY"  # e.g. "9.0" (H100); overrides detection
DEFAULT_COMPUTE_CAPABILITY = 9.0  # H100/H200, used when no GPU can be queried (code generation only)
CUDA_NVCC_FLAGS = ("-w", "-use_fast_math", "-std=c++17")  # the last -std wins over the makefile's c++11


def _cuda_root() -> Path | None:
    """The CUDA installation: $CUDA_PATH, $CUDA_HOME, /usr/local/cuda, else the folder above
    nvcc — the first that holds bin/nvcc (nvcc on the PATH may be a wrapper script)."""
    candidates = [Path(os.environ[v]) for v in ("CUDA_PATH", "CUDA_HOME") if os.environ.get(v)]
    candidates.append(Path("/usr/local/cuda"))
    if shutil.which("nvcc"):
        candidates.append(Path(shutil.which("nvcc")).resolve().parent.parent)
    return next((root for root in candidates if (root / "bin" / "nvcc").exists()), None)


def find_curand(cuda_root: Path | None = None) -> tuple[Path, Path]:
    """``(include folder, library file)`` of curand: the CUDA installation's own, else the
    ``nvidia-curand`` wheel's (``site-packages/nvidia/cu*/``)."""
    candidates = []
    if cuda_root is not None:
        candidates += [(cuda_root / "include", cuda_root / sub) for sub in ("lib64", "lib", "targets/x86_64-linux/lib")]
    try:
        import nvidia  # namespace package of NVIDIA's wheels

        for base in nvidia.__path__:
            for cu in sorted(Path(base).glob("cu*"), reverse=True) + [Path(base) / "curand"]:
                candidates.append((cu / "include", cu / "lib"))
    except ImportError:
        pass
    for include, lib in candidates:
        libraries = sorted(lib.glob("libcurand.so*")) if lib.is_dir() else []
        if (include / "curand.h").exists() and libraries:
            return include, libraries[0]
    raise DeviceError("curand not found: neither the CUDA installation nor the 'nvidia-curand' package has "
                      "curand.h and libcurand.so; pip install 'apical[cuda]'")


def gpu_compute_capability() -> float | None:
    """The first GPU's compute capability from nvidia-smi, or None without a usable GPU."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        answer = subprocess.run(["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=30, check=True).stdout.split()
        return float(answer[0]) if answer else None
    except (subprocess.SubprocessError, OSError, ValueError):
        return None


def cuda_compute_capability() -> float:
    """$APICAL_CUDA_COMPUTE_CAPABILITY, else the GPU's, else 9.0 (generating code without a GPU)."""
    if os.environ.get(CUDA_ARCH_ENV):
        try:
            return float(os.environ[CUDA_ARCH_ENV])
        except ValueError:
            raise DeviceError(f"{CUDA_ARCH_ENV} must be a compute capability such as 9.0, "
                              f"got {os.environ[CUDA_ARCH_ENV]!r}") from None
    return gpu_compute_capability() or DEFAULT_COMPUTE_CAPABILITY


def prepare_cuda(project: Path, capability: float):
    """A fresh brian2cuda device with the preferences that make it build with CUDA 12/13 for
    GPUs of the given compute capability."""
    try:
        from brian2cuda.device import CUDAStandaloneDevice
    except ImportError:
        raise DeviceError("the cuda device needs brian2cuda: pip install 'apical[cuda]'") from None
    cuda_root = _cuda_root()
    if cuda_root is None:
        raise DeviceError("the cuda device needs the CUDA toolkit: nvcc not found (set CUDA_PATH)")
    if capability < 7.5:
        raise DeviceError(f"compute capability {capability} is below 7.5, the oldest CUDA 13 supports")
    include, library = find_curand(cuda_root)
    # The makefile links -lcurand: give the linker an unversioned name in the build folder.
    link_dir = project / "curand_link"
    link_dir.mkdir(parents=True, exist_ok=True)
    link = link_dir / "libcurand.so"
    if not link.exists() or link.resolve() != library.resolve():
        link.unlink(missing_ok=True)
        link.symlink_to(library.resolve())
    backend = prefs.devices.cuda_standalone.cuda_backend
    backend.cuda_path = str(cuda_root)
    backend.extra_compile_args_nvcc = list(CUDA_NVCC_FLAGS)  # a fresh list: brian2cuda edits it in place
    backend.compute_capability = capability
    backend.detect_gpus = False  # we chose the architecture; brian2cuda's detection needs deviceQuery
    backend.gpu_id = 0
    host_flags = [f for f in prefs.codegen.cpp.extra_compile_args_gcc if not f.startswith("-std=")]
    prefs.codegen.cpp.extra_compile_args_gcc = host_flags + ["-std=c++17"]  # Thrust/CUB of CUDA 13 need C++17
    prefs.codegen.cpp.include_dirs = [*prefs.codegen.cpp.include_dirs, str(include)]
    prefs.codegen.cpp.library_dirs = [*prefs.codegen.cpp.library_dirs, str(link_dir)]
    prefs.codegen.cpp.runtime_library_dirs = [*prefs.codegen.cpp.runtime_library_dirs, str(library.parent)]
    return apical_standalone(CUDAStandaloneDevice)()


def device_workarounds(device_name: str, dt) -> list:
    """Objects a network must also hold on this device to work around a device's gaps.

    brian2cuda 1.0b1's synaptic-effect template compares ``defaultclock.timestep`` with the
    pathway's delay even when the pathway runs on a clock of its own, and so fails to compile
    unless the default clock is part of the network. A group without equations on the default
    clock (set to the circuit's own time step, so the comparison holds) declares it; it creates
    no kernel. Other devices need nothing.
    """
    if brian_device_name(device_name) != "cuda_standalone":
        return []
    defaultclock.dt = dt
    return [NeuronGroup(1, "", name="defaultclock_anchor")]


def forget_run_arg_files(standalone: CPPStandaloneDevice, project: Path):
    """Delete a run's argument files: a long training run would otherwise fill the disk."""
    for name in standalone.run_args_arrays:
        for path in (project / "static_arrays" / name, project / "static_arrays" / f"{name}.lock"):
            path.unlink(missing_ok=True)
    standalone.run_args_arrays.clear()
