"""Run configuration: shipped files, every error class, overrides, the resolved-TOML round trip, the
keys that moved into the frameworks' sections, and docs/config.md against the dataclasses."""

import dataclasses
import math
import tomllib
from pathlib import Path

import pytest
from brian2 import ms

from apical.circuits import registry
from apical.circuits.framework import ConfigSection, FrameworkSpec
from apical.runs import config_reference
from apical.runs.config import (Config, ConfigError, config_from_dict, config_from_resolved, config_to_toml,
                                load_config, sections)

CONFIGS = Path(__file__).resolve().parents[1] / "runs" / "configs"


def write(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_mnist_config_is_the_paper_setting():
    config = load_config(CONFIGS / "mnist.toml")
    assert config.model.hidden == (500, 100)
    assert (config.model.time_steps, config.biograd.error_start) == (20, 5)
    assert config.learning.batch_size == 1 and config.learning.learning_rate == 1e-3
    assert config.run.epochs == 10
    assert config.biograd.leak_per_step(config.model.dt) == 0.3
    assert float(config.biograd.membrane_time_constant(config.model.dt) / ms) == pytest.approx(5 / math.log(1 / 0.3))


def test_quick_config_loads():
    config = load_config(CONFIGS / "mnist-quick.toml")
    assert config.model.hidden == (500, 100)
    assert config.run.epochs == 2 and config.run.eval_every == 0
    assert config.learning.rate_scale(1.5) == 0.125  # η halved every half epoch: 5e-4 → 6.25e-5 in the last quarter
    assert config.data.train_samples == 0 and config.data.test_samples == 10000


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    assert isinstance(load_config(path), Config)


def test_defaults_from_an_empty_file(tmp_path):
    config = load_config(write(tmp_path, ""))
    assert config == Config()
    assert config.model.dt == 5 * ms and config.biograd.tau_m is None
    assert config.model.framework == "biograd"
    assert config.seeds.weights == 1 and config.seeds.feedback == 5


@pytest.mark.parametrize(
    "text, message",
    [
        ("[model]\nhiden = [10]", "config key 'model.hiden' is unknown (did you mean 'model.hidden'?)"),
        ("[modle]\nhidden = [10]", "config section 'modle' is unknown (did you mean 'model'?)"),
        ('[model]\ndt = "5*kg"', "config key 'model.dt': '5*kg' is not a time (unknown unit 'kg'"),
        ('[model]\ndt = "5*volt"', "config key 'model.dt': '5*volt' is not a time (expected e.g. \"5*ms\")"),
        ("[model]\ndt = 5", "config key 'model.dt': 5 is not a time"),
        ('[model]\ndt = "5**"', "config key 'model.dt': '5**' is not a time (cannot parse it"),
        ('[model]\ndt = "__import__(\'os\')"', "is not a time (only numbers, unit names"),
        ('[model]\ndt = "-1*ms"', "config key 'model.dt' must be > 0, got '-1*ms'"),
        ("[biograd]\nthreshold = -1", "config key 'biograd.threshold' must be > 0, got -1"),
        ("[biograd]\nleak = 1.0", "config key 'biograd.leak' must be < 1, got 1.0"),
        ('[biograd]\ntau_m = "-4*ms"', "config key 'biograd.tau_m' must be > 0, got \"-4*ms\""),
        ('[biograd]\ntau_m = "1*us"', "config key 'biograd.tau_m' gives a leak per step exp(-dt/tau_m) = 0.0, "
         "outside (0, 1)"),
        ("[biograd]\nerror_start = 20", "config key 'biograd.error_start' must be < model.time_steps (20), got 20"),
        ('[model]\nframework = "scmicro"\n[scmicro]\nerror_start = 20',
         "config key 'scmicro.error_start' must be < model.time_steps (20), got 20"),
        ('[model]\ntime_steps = "abc"', "config key 'model.time_steps': expected an integer, got \"abc\""),
        ("[model]\ntime_steps = 2.5", "config key 'model.time_steps': expected an integer, got 2.5"),
        ("[model]\nhidden = [10, true]", "config key 'model.hidden': expected a list of integers"),
        ('[model]\nframework = "dfa"', "config key 'model.framework' must be one of "
         + ", ".join(f'"{name}"' for name in registry.names()) + ", got \"dfa\""),
        ("[learning]\ndecay = 1.5", "config key 'learning.decay' must be <= 1, got 1.5"),
        ("[learning]\ndecay_every = 0", "config key 'learning.decay_every' must be > 0, got 0"),
        ("[run]\nshuffle = 1", "config key 'run.shuffle': expected true or false, got 1"),
        ("[seeds]\ninput = -2", "config key 'seeds.input' must be >= 0, got -2"),
        ('[biograd]\nleak = 0.3\ntau_m = "4*ms"', "config keys 'biograd.leak' and 'biograd.tau_m' are both given: "
         "give one (tau_m sets leak)"),
        ("hidden = [10]", "config key 'hidden' must be inside a section (did you mean 'model.hidden'?)"),
        ("model = 3", "config section 'model' must be a table"),
    ],
)
def test_errors_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text))
    assert message in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "text, where",
    [
        ("[model]\nthreshold = 0.3\nhidden == [500]\n", "line 3"),
        ("[model]\nthreshold = 0.3\nhidden = [500, 100\n", "end of document, line 3"),
    ],
)
def test_invalid_toml_names_file_and_line(tmp_path, text, where):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert str(path) in message and "not valid TOML" in message and where in message


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nothing.toml")


def test_tau_m_sets_the_leak(tmp_path):
    config = load_config(write(tmp_path, '[model]\ndt = "1*ms"\n[biograd]\ntau_m = "10*ms"'))
    assert config.biograd.leak is None
    assert config.biograd.leak_per_step(config.model.dt) == pytest.approx(math.exp(-0.1), rel=1e-15)
    assert config.biograd.membrane_time_constant(config.model.dt) == 10 * ms
    assert config.bp.leak == 0.3  # another framework's soma keeps its own
    # "number unit" (Brian2's own printing) is accepted too
    assert load_config(write(tmp_path, '[biograd]\ntau_m = "10. ms"')).biograd.tau_m == 10 * ms


def test_overrides(tmp_path):
    config = load_config(
        CONFIGS / "mnist.toml",
        [
            "learning.learning_rate=5e-4",
            "model.hidden=[100]",
            "data.dataset=fashion-mnist",  # bare string, not TOML syntax
            "model.dt=1*ms",
            "biograd.tau_m=2*ms",  # replaces the file's leak instead of conflicting with it
            "run.shuffle=false",
        ],
    )
    assert config.learning.learning_rate == 5e-4
    assert config.model.hidden == (100,)
    assert config.data.dataset == "fashion-mnist"
    assert config.model.dt == 1 * ms and config.biograd.leak_per_step(config.model.dt) == pytest.approx(math.exp(-0.5))
    assert config.run.shuffle is False
    assert config.run.epochs == 10  # untouched keys keep the file's value


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.hiden=[1]", "config key 'model.hiden' is unknown (did you mean 'model.hidden'?)"),
        ("modle.hidden=[1]", "config section 'modle' is unknown (did you mean 'model'?)"),
        ("biograd.threshold=-1", "config key 'biograd.threshold' must be > 0, got -1"),
        ("run.epochs=abc", "config key 'run.epochs': expected an integer, got \"abc\""),
        ("model.hidden", "must look like section.key=value"),
        ("hidden=[1]", "must name a key as section.key"),
    ],
)
def test_override_errors(override, message):
    with pytest.raises(ConfigError) as error:
        load_config(CONFIGS / "mnist.toml", [override])
    assert message in str(error.value)


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["biograd.tau_m=4.153*ms", "model.dt=0.1*ms", "bp.tau_m=3*ms"],
        ["model.dt=0.30000000000000004*ms", "biograd.sleep=true", "data.data_dir=/tmp/a \"b\""],
    ],
)
def test_round_trip_through_toml(tmp_path, overrides):
    config = load_config(CONFIGS / "mnist.toml", overrides)
    text = config_to_toml(config)
    table = tomllib.loads(text)
    # the core sections, then the section of every registered framework that declares one
    declared = {spec.section.name for spec in registry.frameworks().values() if spec.section is not None}
    assert set(table) == {"model", "learning", "data", "run", "seeds"} | declared
    assert {"biograd", "bp", "bioleaf", "scmicro", "eprop"} <= declared
    for section, declared_section in sections().items():  # every key written (leak or tau_m, whichever is set)
        names = {f.name for f in dataclasses.fields(declared_section.schema)}
        assert names - {"leak", "tau_m"} <= set(table[section]) <= names, section
    assert config_from_dict(table) == config
    assert load_config(write(tmp_path, text)) == config
    read_back = config_from_dict(table)
    assert read_back.biograd.leak_per_step(read_back.model.dt) == config.biograd.leak_per_step(config.model.dt)


def test_config_from_dict_matches_file():
    with open(CONFIGS / "mnist.toml", "rb") as handle:
        table = tomllib.load(handle)
    assert config_from_dict(table) == load_config(CONFIGS / "mnist.toml")
    assert config_from_dict({}) == Config()


def test_config_is_frozen():
    config = Config()
    with pytest.raises(AttributeError):
        config.biograd.threshold = 1.0


def test_step_decay_of_the_learning_rate(tmp_path):
    learning = load_config(write(tmp_path, "[learning]\ndecay = 0.5\ndecay_every = 2")).learning
    assert [learning.rate_scale(epoch) for epoch in range(6)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    assert load_config(write(tmp_path, "")).learning.rate_scale(7) == 1.0
    half = load_config(write(tmp_path, "[learning]\ndecay = 0.5\ndecay_every = 0.5")).learning
    # a fraction of an epoch: the factor changes mid-epoch, exactly at each half
    assert [half.rate_scale(e) for e in (0.0, 0.49, 0.5, 0.99, 1.0, 1.5, 2.75)] == [1, 1, 0.5, 0.5, 0.25, 0.125, 1 / 32]
    thirds = load_config(write(tmp_path, "[learning]\ndecay = 0.5\ndecay_every = 0.3333333333333333")).learning
    assert thirds.rate_scale(1.0) == 0.125  # 3 decays by the end of the first epoch, not 2 (rounding)


def test_learning_rate_warm_up_ramps_linearly_then_hands_over_to_the_decay(tmp_path):
    learning = load_config(write(tmp_path, "[learning]\nwarmup_epochs = 1\ndecay = 0.5")).learning
    tenth = 0.1  # chunks of a tenth of an epoch: each runs at the ramp's value at its end
    assert [learning.rate_scale(k * tenth, tenth) for k in range(10)] == pytest.approx([0.1 * (k + 1) for k in range(10)])
    assert learning.rate_scale(1.0, tenth) == 0.5  # ramp done: only the step decay from here on
    assert learning.rate_scale(2.0, tenth) == 0.25
    assert load_config(write(tmp_path, "")).learning.rate_scale(0.0, tenth) == 1.0  # no warm-up by default
    with pytest.raises(ConfigError, match="learning.warmup_epochs"):
        load_config(write(tmp_path, "[learning]\nwarmup_epochs = -1"))


@pytest.mark.parametrize("text, overrides, message", [
    ("[model]\nerror_start = 3", [], "config key 'model.error_start' moved to 'biograd.error_start'"),
    ("[learning]\nsleep = true", [], "config key 'learning.sleep' moved to 'biograd.sleep'"),
    ("[learning]\nsleep_batch = 4", [], "config key 'learning.sleep_batch' moved to 'biograd.sleep_batch'"),
    ('[model]\nframework = "bp"\n[learning]\nbp_learning_rate = 3e-4', [],
     "config key 'learning.bp_learning_rate' moved to 'bp.learning_rate'"),
    # the new place is in the section of the config's framework where that took the key over
    ('[model]\nframework = "bioleaf"\nthreshold = 0.4', [],
     "config key 'model.threshold' moved to 'bioleaf.threshold'"),
    ('[model]\nframework = "bp"\nerror_start = 5', [], "config key 'model.error_start' moved to 'biograd.error_start'"),
    ("", ["model.feedback_init=\"random\""], "config key 'model.feedback_init' moved to 'biograd.feedback_init'"),
    ('[model]\nframework = "scmicro"', ["model.leak=0.5"], "config key 'model.leak' moved to 'scmicro.leak'"),
])
def test_a_key_that_moved_is_refused_naming_its_new_place(tmp_path, text, overrides, message):
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text), overrides)
    assert str(error.value) == message


# What Apical wrote into a results directory (config.toml, a checkpoint's record) before the keys
# moved, abridged: every [model] and [learning] key, and a framework section.
OLD_RESOLVED = '''# Resolved Apical configuration: every key, defaults filled in.

[model]
framework = "{framework}"
hidden = [500, 100]
time_steps = 20
error_start = 3
dt = "5.0*ms"
# leak not set (leak per step = 0.8187307530779818)
tau_m = "25.0*ms"
threshold = 0.4
window = 0.3
gamma = 1.0
surrogate = "triangular"
equations = {{}}
feedback_init = "random"

[learning]
learning_rate = 0.0005
batch_size = 1
sleep = true
sleep_steps = 50
sleep_learning_rate = 3.3333333333333335e-05
sleep_decay = 2.0
sleep_batch = 64
optimizer = "sgd"
bp_learning_rate = 0.0003

[eprop]
surrogate = "fast_sigmoid"
'''


def test_a_results_directory_written_before_the_move_reads_with_the_keys_in_their_new_places(tmp_path):
    text = OLD_RESOLVED.format(framework="biograd")
    config = load_config(write(tmp_path, text))
    b = config.biograd
    assert (b.error_start, b.tau_m, b.leak, b.threshold, b.surrogate, b.feedback_init) == (
        3, 25 * ms, None, 0.4, "triangular", "random")
    assert (b.sleep, b.sleep_batch) == (True, 64)
    assert config.bp == sections()["bp"].schema()  # BioGrad's run did not read it: the defaults
    assert config.eprop.surrogate == "fast_sigmoid"  # a section's own key is never overwritten
    assert config_from_resolved(text) == config  # a checkpoint's record reads the same
    # the migrated config writes the new layout, which reads back to the same config
    assert "[biograd]" in config_to_toml(config) and load_config(write(tmp_path, config_to_toml(config))) == config
    # the same keys in a config of one's own (no header) are refused
    with pytest.raises(ConfigError, match="moved to 'biograd.error_start'"):
        load_config(write(tmp_path, text.split("\n", 1)[1]))


def test_an_older_run_of_another_framework_keeps_the_keys_it_read():
    bp = config_from_resolved(OLD_RESOLVED.format(framework="bp").replace('"triangular"', '"rectangular"'))
    assert (bp.bp.learning_rate, bp.bp.threshold, bp.bp.tau_m) == (3e-4, 0.4, 25 * ms)
    assert bp.biograd == sections()["biograd"].schema()  # error_start, feedback_init, sleep: unread by BPTT
    bioleaf = config_from_resolved(OLD_RESOLVED.format(framework="bioleaf"))
    assert (bioleaf.bioleaf.error_start, bioleaf.bioleaf.feedback_init, bioleaf.bioleaf.threshold) == (3, "random", 0.4)
    eprop = config_from_resolved(OLD_RESOLVED.format(framework="eprop").replace("hidden = [500, 100]", "hidden = [50]")
                                 .replace("sleep = true", "sleep = false"))
    assert eprop.eprop.surrogate == "fast_sigmoid" and eprop.biograd == sections()["biograd"].schema()


def test_the_default_framework_is_fixed():
    first = FrameworkSpec(name="aardvark", title="Aardvark", factory=lambda *args: None, order=0)
    registry.register(first)
    try:
        assert registry.names()[0] == "aardvark"
        assert Config().model.framework == "biograd" and config_from_dict({}).model.framework == "biograd"
    finally:
        registry.unregister("aardvark")


def test_docs_config_md_is_what_the_dataclasses_write():
    text = config_reference.reference()
    assert config_reference.PATH.read_text() == text, "docs/config.md is stale: python -m apical.runs.config_reference"
    rows = [line for line in text.splitlines() if line.startswith("| `[")]
    keys = [f"{name}.{field.name}" for name, section in sections().items()
            if section.schema.__module__.startswith("apical.") for field in dataclasses.fields(section.schema)]
    assert [row.split("`")[1].strip("[]") + "." + row.split("`")[3] for row in rows] == keys
    assert {"model", "learning", "data", "run", "seeds", "biograd", "bp", "bioleaf", "scmicro", "eprop"} <= {
        key.split(".")[0] for key in keys}
    assert "| `[biograd]` | `threshold` | number, > 0 | 0.3 | θ, firing threshold (strict: v > θ) |" in rows


def test_field_comments_read_continuations_and_show_a_missing_one():
    @dataclasses.dataclass(frozen=True)
    class Keys:
        documented: float = 1.0  # the first line,
        #   and its continuation
        bare: int = 2

    comments = config_reference.field_comments(Keys)
    assert comments == {"documented": "the first line, and its continuation", "bare": ""}
    assert ConfigSection("keys", Keys).keys() == ["keys.documented", "keys.bare"]
