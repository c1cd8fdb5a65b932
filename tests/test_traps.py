"""Brian2's traps caught at build in one line (circuits/traps.py), and a registry that one broken
or incomplete framework does not stop (circuits/registry.py).

The Brian2 cases run tiny networks on the runtime device; the command-line cases run ``apical`` in
fresh processes and read their whole standard error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from brian2 import Network, NeuronGroup, Synapses, ms
from importlib.metadata import EntryPoint

from apical.circuits import registry
from apical.circuits.backend import select_runtime
from apical.circuits.framework import ConfigError, Framework, FrameworkSpec, lazy
from apical.circuits.traps import ModelError, check_network, model_errors
from apical.models.soma import SOMA_EQUATIONS

REPOSITORY = Path(__file__).resolve().parents[1]
QUICK = REPOSITORY / "runs" / "configs" / "mnist-quick.toml"
TINY = ["--device", "runtime", "--set", "model.hidden=[5]", "--set", "data.train_samples=20", "--set",
        "data.test_samples=10", "--set", "run.chunk_samples=20"]
DECAY = 2 * (1 - np.exp(-1.0))  # dx/dt = (2 - x) / τ from x = 0, after one τ
STEP = np.exp(-0.1)  # exp(-dt / τ)
EULER = 2 * (1 - 0.9 ** 10)  # the same by Euler's method, ten steps of dt = τ / 10


@pytest.fixture(autouse=True)
def runtime():
    select_runtime("float64")


def build_and_run(make) -> Network:
    """The objects ``make()`` returns in a Network, checked and run for 1 ms, Brian2's errors turned
    into one line."""
    with model_errors():
        network = Network(*make())
        check_network(network)
        network.run(1 * ms, namespace={})
    return network


def decaying(name: str, method: str = "exact", **kwargs) -> NeuronGroup:
    return NeuronGroup(1, f"d{name}/dt = (2 - {name}) / ms : 1", method=method, dt=0.1 * ms, name="hidden_1", **kwargs)


# ------------------------------------------------------------------------------ the trap itself
def test_brian2_reads_a_variable_E_as_eulers_number_under_exact_integration():
    """The trap check_network exists for: unchecked, Brian2 2.10.1 integrates E exactly as if its
    value were e on every step (no error, no warning); Euler's method reads it right."""
    exact, euler = decaying("E"), decaying("E", method="euler")
    Network(exact).run(1 * ms, namespace={})
    Network(euler).run(1 * ms, namespace={})
    assert exact.E[0] == pytest.approx(np.e * STEP + 2 * (1 - STEP), rel=1e-9)  # one step from e, on every step
    assert euler.E[0] == pytest.approx(EULER, rel=1e-9)


# ------------------------------------------------------------------------------ names refused in one line
@pytest.mark.parametrize("make, message", [
    (lambda: [decaying("E")], "equations of 'hidden_1': the variable 'E' is sympy's name of Euler's number e "
                              "(2.71828...), which Brian2's exact integration reads in its place; rename it"),
    (lambda: [decaying("oo", method=("exact", "euler", "heun"))],
     "equations of 'hidden_1': the variable 'oo' is sympy's name of infinity"),
    (lambda: [decaying("gamma")], "equations of 'hidden_1': the variable 'gamma' is sympy's name of a function"),
    (lambda: [decaying("x", reset="x = e", threshold="x > 1")],
     "reset of 'hidden_1': 'e' is Brian2's constant e, Euler's number (2.71828...), not a variable"),
    (lambda: [NeuronGroup(1, "dx/dt = -x / ms : 1\ntheta : 1", threshold="x > theta", namespace={"theta": 0.3},
                          name="hidden_1")],
     "equations of 'hidden_1': the variable 'theta' hides the constant theta = 0.3 of the group's namespace"),
])
def test_a_trapped_name_is_refused_in_one_line_naming_group_and_variable(make, message):
    with pytest.raises(ModelError) as refused:
        build_and_run(make)
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


def test_event_driven_equations_are_integrated_exactly_so_E_is_refused_there_too():
    def make():
        cells = NeuronGroup(2, "v : 1", threshold="v > 1", name="hidden_1")
        forward = Synapses(cells, cells, "w : 1\ndE/dt = -E / ms : 1 (event-driven)", on_pre="E += 1\nv_post += w * E",
                           name="forward_1")
        forward.connect()
        return [cells, forward]

    with pytest.raises(ModelError, match=r"^equations of 'forward_1': the variable 'E' is sympy's name of Euler's"):
        build_and_run(make)


def test_the_same_names_pass_where_brian2_reads_them_right():
    """E under Euler's method, E as a parameter of an exactly integrated equation."""
    network = build_and_run(lambda: [decaying("E", method="euler"),
                                     NeuronGroup(1, "dv/dt = (E - v) / ms : 1\nE : 1 (constant)", method="exact",
                                                 name="hidden_2")])
    euler, exact = sorted((obj for obj in network.objects if isinstance(obj, NeuronGroup)), key=lambda g: g.name)
    assert euler.E[0] == pytest.approx(EULER, rel=1e-9)
    assert exact.v[0] == 0.0  # E = 0: nothing read as e


# ------------------------------------------------------------------------------ Brian2's own errors in one line
@pytest.mark.parametrize("make, line", [
    (lambda: [NeuronGroup(1, "dv/dt = -v : 1", name="hidden_1")],
     "equations of 'hidden_1': Inconsistent units in differential equation defining variable 'v': Expression '-v' "
     "does not have the expected unit hertz (unit is 1)."),
    (lambda: [NeuronGroup(1, "dv/dt = -v / ms : 1", threshold="v > 1", reset="v = 3*mV", name="hidden_1")],
     "reset of 'hidden_1': The right-hand-side of code statement \"v = 3*mV\" does not have the expected unit 1 "
     "(unit is V)."),
    (lambda: [NeuronGroup(1, "dv/dt = -v / ms : 1\ne : 1", name="hidden_1")],
     "equations of 'hidden_1': 'e' is the name of a constant, cannot be used as a variable name."),
    (lambda: [NeuronGroup(1, "dv/dt = -v / ms : 1", threshold="v > 1", reset="v = eligibility", name="hidden_1")],
     "reset of 'hidden_1': The identifier \"eligibility\" could not be resolved."),
])
def test_brian2_errors_about_the_code_become_one_line_naming_the_group(make, line):
    with pytest.raises(ModelError) as refused:
        build_and_run(make)
    assert str(refused.value) == line
    assert refused.value.__cause__ is not None  # the original, for --debug


def test_an_error_that_is_not_about_a_network_s_code_passes_unchanged():
    with pytest.raises(ZeroDivisionError):
        with model_errors():
            1 / 0


# ------------------------------------------------------------------------------ the command line
def apical(*arguments: str, environment: dict | None = None, cwd: Path = REPOSITORY) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "apical.runs.cli", *arguments], capture_output=True, text=True,
                          env=environment, cwd=cwd)


def error_lines(stderr: str) -> list[str]:
    """The lines of standard error apart from the driver's progress lines."""
    return [line for line in stderr.splitlines() if not line.startswith(("built ", "note: "))]


def test_apical_train_refuses_an_edited_equation_with_E_in_one_line(tmp_path):
    state = SOMA_EQUATIONS + "dE/dt = -E / tau_m : 1  # a trace named E\n"
    trained = apical("train", str(QUICK), "--out", str(tmp_path / "run"), *TINY,
                     "--set", f"model.equations.soma.state={json.dumps(state)}")
    assert trained.returncode == 2
    assert error_lines(trained.stderr) == [
        "apical: equations of 'hidden_1': the variable 'E' is sympy's name of Euler's number e (2.71828...), which "
        "Brian2's exact integration reads in its place; rename it"]


def test_apical_train_reports_a_unit_error_in_one_line_and_the_traceback_with_debug(tmp_path):
    edit = ["--set", "model.equations.soma.state=" + json.dumps(SOMA_EQUATIONS.replace("dv/dt = -v / tau_m", "dv/dt = -v"))]
    trained = apical("train", str(QUICK), "--out", str(tmp_path / "run"), *TINY, *edit)
    assert trained.returncode == 2
    assert error_lines(trained.stderr) == [
        "apical: equations of 'hidden_1': Inconsistent units in differential equation defining variable 'v': "
        "Expression '-v' does not have the expected unit hertz (unit is 1)."]
    debugged = apical("--debug", "train", str(QUICK), "--out", str(tmp_path / "debug"), *TINY, *edit)
    assert debugged.returncode != 0 and "Traceback" in debugged.stderr and "DimensionMismatchError" in debugged.stderr


# ------------------------------------------------------------------------------ the registry
class Incomplete(Framework):
    """A framework that forgot load_state_arrays."""

    def __init__(self, config, n_in, n_out, chunk, build_dir):
        pass

    def train_chunk(self, input_spikes, labels, chunk_index=0, rate_scale=1.0):
        return np.zeros((len(labels), 10))

    def evaluate_chunk(self, input_spikes, labels):
        return np.zeros((len(labels), 10))

    def state_arrays(self):
        return {}


MISSING = ("does not implement load_state_arrays, which every Framework must (circuits/framework.py, "
           "docs/frameworks.md)")


def test_a_framework_class_missing_a_method_is_refused_at_registration():
    with pytest.raises(ConfigError) as refused:
        registry.register(FrameworkSpec(name="incomplete", title="Incomplete", factory=Incomplete))
    assert str(refused.value) == f"framework 'incomplete': tests.test_traps.Incomplete {MISSING}"
    assert "incomplete" not in registry.frameworks()


def test_a_lazy_factory_missing_a_method_is_refused_when_selected():
    """Registering imports nothing; selecting the framework imports its class and names the method."""
    registry.register(FrameworkSpec(name="incomplete", title="Incomplete", factory=lazy("tests.test_traps:Incomplete")))
    try:
        with pytest.raises(ConfigError) as refused:
            registry.get("incomplete")
        assert str(refused.value) == f"framework 'incomplete': tests.test_traps.Incomplete {MISSING}"
    finally:
        registry.unregister("incomplete")


def test_a_lazy_factory_whose_module_fails_to_import_fails_where_it_is_called():
    """Selecting it stops nothing (a config loads every framework with a numpy form); building it
    raises the import error, as a factory that imports on its first call always did."""
    registry.register(FrameworkSpec(name="unimportable", title="U", factory=lazy("apical_no_such_module:Thing")))
    try:
        assert registry.get("unimportable").name == "unimportable"
        with pytest.raises(ModuleNotFoundError, match="apical_no_such_module"):
            registry.get("unimportable").factory(None, 784, 10, 1, None)
    finally:
        registry.unregister("unimportable")


def test_lazy_imports_on_first_call_and_names_its_target():
    factory = lazy("apical.circuits.framework:ConfigSection")
    assert factory.__module__ == "apical.circuits.framework" and factory.__name__ == "ConfigSection"
    assert factory.load() is __import__("apical.circuits.framework", fromlist=["ConfigSection"]).ConfigSection
    with pytest.raises(ModuleNotFoundError):
        lazy("apical.no_such_module:Thing")()


@pytest.fixture
def broken_entry_point(monkeypatch):
    """The registry read again with one more entry point, whose module does not exist."""
    entry = EntryPoint(name="broken", value="apical_no_such_package:FRAMEWORK", group=registry.ENTRY_POINT_GROUP)
    real = registry.entry_points
    monkeypatch.setattr(registry, "entry_points", lambda group: [*real(group=group), entry])
    monkeypatch.setattr(registry, "_found", None)
    yield
    monkeypatch.undo()
    registry._found = None


BROKEN = ("entry point 'broken' of apical.frameworks (apical_no_such_package:FRAMEWORK) fails to load: No module "
          "named 'apical_no_such_package'")


def test_a_broken_entry_point_is_one_warning_line_and_stops_no_other_framework(broken_entry_point, capsys):
    found = registry.frameworks()
    assert capsys.readouterr().err == f"apical: warning: {BROKEN}; the other frameworks work\n"
    assert {"biograd", "bp"} <= set(found) and "broken" not in found
    assert registry.get("biograd").name == "biograd"
    assert registry.broken() == {"broken": BROKEN}
    with pytest.raises(ConfigError) as refused:
        registry.get("broken")
    assert str(refused.value) == f"config key 'model.framework': {BROKEN}"


def installed(tmp_path: Path, entries: dict[str, str]) -> dict[str, str]:
    """The environment of a process that sees ``entries`` as installed entry points of apical.frameworks
    (a dist-info folder on PYTHONPATH, as pip leaves one), with tests/ importable."""
    site = tmp_path / "site-packages"
    info = site / "apical_traps_example-0.0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: apical-traps-example\nVersion: 0.0.0\n")
    (info / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\n"
                                           + "".join(f"{name} = {value}\n" for name, value in entries.items()))
    environment = os.environ.copy()
    environment["PYTHONPATH"] = os.pathsep.join([str(site), str(REPOSITORY), *filter(None, [environment.get("PYTHONPATH")])])
    return environment


def test_apical_with_a_broken_plugin_installed(tmp_path):
    """--help works and warns in one line; selecting the broken framework is one line more, saying why it
    cannot be used; another
    framework still trains (the BPTT baseline, 20 digits)."""
    environment = installed(tmp_path, {"broken": "apical_no_such_package:FRAMEWORK"})
    warning = f"apical: warning: {BROKEN}; the other frameworks work"
    helped = apical("--help", environment=environment, cwd=tmp_path)
    assert helped.returncode == 0 and "train" in helped.stdout
    assert helped.stderr.splitlines() == [warning]
    trained = apical("train", str(QUICK), "--out", str(tmp_path / "run"), *TINY, "--set", 'model.framework="broken"',
                     environment=environment, cwd=tmp_path)
    assert trained.returncode == 2
    first, second = error_lines(trained.stderr)  # the warning, then the config's refusal of the name
    assert first == warning and second == f"apical: config key 'model.framework': {BROKEN}"  # why, not a list
    bp = ["--set", "model.hidden=[5]", "--set", "data.train_samples=20", "--set", "data.test_samples=10", "--set",
          "run.chunk_samples=20", "--set", "learning.batch_size=10", "--set", "run.epochs=1"]
    other = apical("train", str(REPOSITORY / "runs" / "configs" / "mnist-bp.toml"), "--out", str(tmp_path / "bp"), *bp,
                   environment=environment, cwd=tmp_path)
    assert other.returncode == 0, other.stderr
    assert other.stderr.splitlines()[0] == warning and other.stderr.count(BROKEN) == 1
    assert "final test accuracy" in other.stdout
