"""brian2cuda (``--device cuda``): preferences, CUDA code generation and compilation of every
circuit (needs nvcc, no GPU), and CPU-vs-GPU agreement (marked ``cuda``: needs a GPU).

Agreement is checked on fixed input rasters and fixed sleep noise (no random numbers in the
compared path). Tolerance: nvcc builds with ``-use_fast_math`` and synaptic effects may be summed
by atomics in any order, so float64 values may differ in their last bits; a difference that large
enough to flip a spike would show as a mismatch of spike counts, which must be exact.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from apical.circuits import backend
from apical.circuits.backend import DeviceError, cuda_compute_capability, find_curand, prepare_device
from apical.circuits.biograd.network import BioGradNetwork, BioGradSettings, initial_state
from apical.circuits.biograd.oracle import SleepParameters, sleep_noise
from apical.circuits.biograd.sleep import BioGradSleepNetwork

try:
    import brian2cuda  # noqa: F401

    HAVE_BRIAN2CUDA = True
except ImportError:
    HAVE_BRIAN2CUDA = False

needs_cuda_toolkit = pytest.mark.skipif(
    not HAVE_BRIAN2CUDA or backend._cuda_root() is None,
    reason="CUDA code generation needs brian2cuda (pip install 'apical[cuda]') and nvcc (the CUDA toolkit)",
)
needs_gpu = pytest.mark.skipif(backend.gpu_compute_capability() is None, reason="no GPU (nvidia-smi finds none)")

SIZES = (30, 20, 12, 5)
COMPILE_SIZES = (30, 12, 5)  # one hidden layer: every kind of code object, fewer files for nvcc (~2 min each)
SAMPLES, STEPS, ERROR_START = 4, 8, 2
GPU_TOLERANCE = dict(rtol=1e-6, atol=1e-9)


def case():
    rng = np.random.default_rng(7)
    state = initial_state(SIZES, rng, "forward_product")
    state.weights = [2.5 * W for W in state.weights]  # enough activity that every layer learns
    rasters = (rng.random((SAMPLES, STEPS, SIZES[0])) < 0.3).astype(float)
    labels = rng.integers(0, SIZES[-1], SAMPLES)
    return state, rasters, labels


def settings(sizes=SIZES):
    return BioGradSettings(sizes=sizes, time_steps=STEPS, error_start=ERROR_START, batch_size=2)


# --------------------------------------------------------------------------- preferences
def test_compute_capability_override(monkeypatch):
    monkeypatch.setenv(backend.CUDA_ARCH_ENV, "8.0")
    assert cuda_compute_capability() == 8.0
    monkeypatch.setenv(backend.CUDA_ARCH_ENV, "hopper")
    with pytest.raises(DeviceError, match="APICAL_CUDA_COMPUTE_CAPABILITY must be a compute capability"):
        cuda_compute_capability()


@needs_cuda_toolkit
def test_too_old_gpu_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv(backend.CUDA_ARCH_ENV, "7.0")
    with pytest.raises(DeviceError, match="below 7.5"):
        prepare_device("cuda", tmp_path)


def test_missing_brian2cuda_is_named(monkeypatch, tmp_path):
    monkeypatch.setitem(__import__("sys").modules, "brian2cuda.device", None)
    with pytest.raises(DeviceError, match=r"pip install 'apical\[cuda\]'"):
        prepare_device("cuda", tmp_path)


def test_missing_curand_is_named(monkeypatch, tmp_path):
    monkeypatch.setitem(__import__("sys").modules, "nvidia", None)
    with pytest.raises(DeviceError, match="curand not found"):
        find_curand(tmp_path)  # an empty folder as the CUDA installation


# --------------------------------------------------------------------------- code generation
# nvcc spends ~16 s on each source file here, almost all of it in brian2cuda's headers, so a whole
# project takes 12–20 min on a 2-core machine (BioGrad's wake network: 89 files). The default run
# therefore generates the CUDA code of every circuit, and compiles with nvcc, through the project's
# own makefile, one code object of every template brian2cuda used for BioGrad's wake network (the
# largest of each: neurons, run_regularly operations, event-driven and summed synapses, synapse
# creation, spike propagation, a spike monitor) together with the project's own files (objects,
# network, run loop, random numbers). ``-m slow`` (and .ci/gpu-check) compiles and links every project.

def _check_makefile(project):
    """The build used C++17 and the chosen architecture, and links the curand the set-up installed."""
    makefile = (project / "makefile").read_text()
    assert "-std=c++17" in makefile.split("NVCCFLAGS", 1)[1].splitlines()[0]
    assert f"sm_{int(cuda_compute_capability() * 10)}" in makefile
    assert (project / "curand_link" / "libcurand.so").resolve().exists()


def _check_project(project):
    """The binary was linked, with the flags of :func:`_check_makefile`."""
    assert (project / "main").exists(), "no binary was linked"
    _check_makefile(project)


@pytest.fixture
def generate_only(monkeypatch):
    """Generate a CUDA project without running nvcc; yields the folders brian2cuda would have compiled."""
    from brian2cuda.device import CUDAStandaloneDevice

    skipped = []
    monkeypatch.setattr(CUDAStandaloneDevice, "compile_source",
                        lambda self, directory, *args, **kwargs: skipped.append(Path(directory)))
    return skipped


def _check_generated(project, skipped):
    """Code generation finished: the build reached the compile step with CUDA sources written, and
    the makefile builds every one of them."""
    assert skipped == [project], "brian2cuda did not reach its compile step"
    _check_makefile(project)
    sources = {path.stem for path in (project / "code_objects").glob("*.cu")}
    assert sources, "no CUDA sources were generated"
    makefile = (project / "makefile").read_text()
    missing = [name for name in sources if f"code_objects/{name}.cu" not in makefile]
    assert not missing, f"generated sources the makefile does not build: {missing}"


def bioleaf_network(tmp_path):
    from apical.circuits.bioleaf.network import BioLeaFNetwork, BioLeaFSettings

    settings = BioLeaFSettings(sizes=COMPILE_SIZES, time_steps=STEPS, error_start=ERROR_START, batch_size=2)
    return BioLeaFNetwork(settings, SAMPLES, device_name="cuda", build_dir=tmp_path)


def scmicro_network(tmp_path):
    from apical.circuits.scmicro.network import SCMicroNetwork, SCMicroSettings, initial_state as scmicro_initial_state

    sizes = COMPILE_SIZES + (4,)  # two hidden layers: the feedback pathways and SST relays need one above
    state = scmicro_initial_state(sizes, np.random.default_rng(11), np.random.default_rng(12))
    settings = SCMicroSettings(sizes=sizes, time_steps=STEPS, error_start=ERROR_START, batch_size=2)
    return SCMicroNetwork(settings, state.connection_types, SAMPLES, device_name="cuda", build_dir=tmp_path)


def sleep_network(tmp_path):
    return BioGradSleepNetwork(BioGradSettings(sizes=COMPILE_SIZES), SleepParameters(steps=6, batch_size=3),
                               device_name="cuda", build_dir=tmp_path)


OTHER_NETWORKS = {"biograd_sleep": sleep_network, "bioleaf": bioleaf_network, "scmicro": scmicro_network}


PROJECT_SOURCES = ("objects", "network", "run", "rand", "synapses_classes", "main")


def one_code_object_per_template(code_objects, project):
    """The largest generated source of each template among ``code_objects`` (name → CodeObject),
    as the makefile's object targets."""
    largest = {}
    for name, code_object in code_objects.items():
        source = project / "code_objects" / f"{name}.cu"
        size = source.stat().st_size
        if size > largest.get(code_object.template_name, ("", -1))[1]:
            largest[code_object.template_name] = (f"code_objects/{name}.o", size)
    return {template: target for template, (target, _) in largest.items()}


@pytest.mark.standalone
@needs_cuda_toolkit
def test_biograd_wake_network_compiles_for_cuda_per_template(tmp_path, generate_only):
    network = BioGradNetwork(settings(COMPILE_SIZES), SAMPLES, device_name="cuda", build_dir=tmp_path)
    project = network.project_dir
    _check_generated(project, generate_only)
    chosen = one_code_object_per_template(network.device.code_objects, project)
    # Every template that carries model code must be among those compiled, or the test says less than it claims.
    assert {"stateupdate", "threshold", "reset", "synapses", "summed_variable", "synapses_push_spikes",
            "synapses_create_array", "spikemonitor"} <= set(chosen), sorted(chosen)
    targets = sorted(chosen.values()) + [f"{name}.o" for name in PROJECT_SOURCES]
    build = subprocess.run(["make", f"-j{os.cpu_count() or 1}", *targets], cwd=project, capture_output=True, text=True)
    assert build.returncode == 0, f"nvcc failed:\n{build.stdout[-4000:]}\n{build.stderr[-4000:]}"
    missing = [target for target in targets if not (project / target).exists()]
    assert not missing, f"make reported success but wrote no {missing}"


@pytest.mark.slow
@pytest.mark.standalone
@needs_cuda_toolkit
def test_biograd_wake_network_compiles_for_cuda(tmp_path):
    network = BioGradNetwork(settings(COMPILE_SIZES), SAMPLES, device_name="cuda", build_dir=tmp_path)
    _check_project(network.project_dir)


@pytest.mark.standalone
@needs_cuda_toolkit
@pytest.mark.parametrize("name", sorted(OTHER_NETWORKS))
def test_network_generates_cuda_code(name, tmp_path, generate_only):
    network = OTHER_NETWORKS[name](tmp_path)
    _check_generated(network.project_dir, generate_only)


@pytest.mark.slow
@pytest.mark.standalone
@needs_cuda_toolkit
@pytest.mark.parametrize("name", sorted(OTHER_NETWORKS))
def test_network_compiles_for_cuda(name, tmp_path):
    network = OTHER_NETWORKS[name](tmp_path)
    _check_project(network.project_dir)


# --------------------------------------------------------------------------- on a GPU
def on_cpu_and_gpu(make_network, tmp_path, run):
    """``run(network)`` on the same circuit built for cpp_standalone and for cuda_standalone."""
    return {device: run(make_network(device, tmp_path / device)) for device in ("cpp", "cuda")}


@pytest.mark.cuda
@needs_cuda_toolkit
@needs_gpu
def test_wake_training_agrees_with_cpu(tmp_path):
    state, rasters, labels = case()
    results = on_cpu_and_gpu(lambda device, folder: BioGradNetwork(settings(), SAMPLES, device_name=device,
                                                                    build_dir=folder),
                             tmp_path, lambda network: network.run(state, rasters, labels, 0.05))
    cpu, gpu = results["cpp"], results["cuda"]
    np.testing.assert_array_equal(gpu.output_counts, cpu.output_counts)
    for l, (W_gpu, W_cpu, W_before) in enumerate(zip(gpu.state.weights, cpu.state.weights, state.weights)):
        assert np.abs(W_cpu - W_before).max() > 1e-4, f"layer {l + 1} did not learn: vacuous comparison"
        np.testing.assert_allclose(W_gpu, W_cpu, **GPU_TOLERANCE, err_msg=f"W^{l + 1}")
    for l, (b_gpu, b_cpu) in enumerate(zip(gpu.state.biases, cpu.state.biases)):
        np.testing.assert_allclose(b_gpu, b_cpu, **GPU_TOLERANCE, err_msg=f"b^{l + 1}")


@pytest.mark.cuda
@needs_cuda_toolkit
@needs_gpu
def test_sleep_agrees_with_cpu(tmp_path):
    state, _, _ = case()
    sleep = SleepParameters(steps=10, batch_size=4, learning_rate=0.01)
    rng = np.random.default_rng(3)
    noise = [sleep_noise(rng, sleep.batch_size, sleep.steps, n) for n in SIZES[1:-1]]
    results = on_cpu_and_gpu(lambda device, folder: BioGradSleepNetwork(BioGradSettings(sizes=SIZES), sleep,
                                                                         device_name=device, build_dir=folder),
                             tmp_path, lambda network: network.run(state.weights, state.biases, state.feedback, noise))
    for l, (B_gpu, B_cpu, B_before) in enumerate(zip(results["cuda"], results["cpp"], state.feedback)):
        assert np.abs(B_cpu - B_before).max() > 1e-4, f"B^{l + 1} did not change: vacuous comparison"
        np.testing.assert_allclose(B_gpu, B_cpu, **GPU_TOLERANCE, err_msg=f"B^{l + 1}")


@pytest.mark.cuda
@needs_cuda_toolkit
@needs_gpu
def test_bioleaf_training_agrees_with_cpu(tmp_path):
    from apical.circuits.bioleaf.network import BioLeaFNetwork, BioLeaFSettings, initial_state as bioleaf_initial_state
    from apical.circuits.bioleaf.oracle import LearningRates

    _, rasters, labels = case()
    state = bioleaf_initial_state(SIZES, np.random.default_rng(11))
    state.weights = [2.5 * W for W in state.weights]
    settings = BioLeaFSettings(sizes=SIZES, time_steps=STEPS, error_start=ERROR_START, batch_size=2)
    rates = LearningRates(forward=0.05, interneuron=0.05, apical=0.05, mirror=0.01)
    results = on_cpu_and_gpu(lambda device, folder: BioLeaFNetwork(settings, SAMPLES, device_name=device,
                                                                    build_dir=folder),
                             tmp_path, lambda network: network.run(state, rasters, labels, rates))
    cpu, gpu = results["cpp"], results["cuda"]
    np.testing.assert_array_equal(gpu.output_counts, cpu.output_counts)
    for group in type(state).GROUPS:
        for l, (a_gpu, a_cpu) in enumerate(zip(getattr(gpu.state, group), getattr(cpu.state, group))):
            np.testing.assert_allclose(a_gpu, a_cpu, **GPU_TOLERANCE, err_msg=f"{group}[{l}]")
    assert any(np.abs(a - b).max() > 1e-4 for a, b in zip(cpu.state.weights, state.weights)), "nothing learnt"


@pytest.mark.cuda
@needs_cuda_toolkit
@needs_gpu
def test_scmicro_training_agrees_with_cpu(tmp_path):
    from apical.circuits.scmicro.network import SCMicroNetwork, SCMicroSettings, initial_state as scmicro_initial_state

    _, rasters, labels = case()
    state = scmicro_initial_state(SIZES, np.random.default_rng(11), np.random.default_rng(12))
    state.weights = [2.5 * W for W in state.weights]
    settings = SCMicroSettings(sizes=SIZES, time_steps=STEPS, error_start=ERROR_START, batch_size=2)
    results = on_cpu_and_gpu(lambda device, folder: SCMicroNetwork(settings, state.connection_types, SAMPLES,
                                                                    device_name=device, build_dir=folder),
                             tmp_path, lambda network: network.run(state, rasters, labels, 0.2))
    cpu, gpu = results["cpp"], results["cuda"]
    np.testing.assert_array_equal(gpu.output_counts, cpu.output_counts)
    for l, (W_gpu, W_cpu) in enumerate(zip(gpu.state.weights + gpu.state.biases, cpu.state.weights + cpu.state.biases)):
        np.testing.assert_allclose(W_gpu, W_cpu, **GPU_TOLERANCE, err_msg=f"array {l}")
    assert any(np.abs(a - b).max() > 1e-4 for a, b in zip(cpu.state.weights, state.weights)), "nothing learnt"


def test_cuda_tests_are_not_silently_empty():
    """Where nvcc is installed (as on CI), the compile tests above must run, not skip; where it is
    absent this test is reported as skipped too, so a run without the CUDA tests never looks complete."""
    if not shutil.which("nvcc"):
        pytest.skip("no nvcc on this machine: the CUDA code-generation and compile tests did not run")
    if not HAVE_BRIAN2CUDA:
        pytest.fail("nvcc is installed but brian2cuda is not: .ci/setup must install the 'cuda' extra")
    if backend._cuda_root() is None:
        pytest.fail("nvcc is on the PATH but Apical finds no CUDA installation: the compile tests would skip")
