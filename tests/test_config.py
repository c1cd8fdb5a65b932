"""Run configuration: shipped files, every error class, overrides and the resolved-TOML round trip."""

import dataclasses
import math
import tomllib
from pathlib import Path

import pytest
from brian2 import ms

from apical.circuits import registry
from apical.runs.config import Config, sections, ConfigError, config_from_dict, config_to_toml, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "runs" / "configs"


def write(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_mnist_config_is_the_paper_setting():
    config = load_config(CONFIGS / "mnist.toml")
    assert config.model.hidden == (500, 100)
    assert (config.model.time_steps, config.model.error_start) == (20, 5)
    assert config.learning.batch_size == 1 and config.learning.learning_rate == 1e-3
    assert config.run.epochs == 10
    assert config.leak_per_step == 0.3
    assert float(config.model.membrane_time_constant / ms) == pytest.approx(5 / math.log(1 / 0.3))


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
    assert config.model.dt == 5 * ms and config.model.tau_m is None
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
        ("[model]\nthreshold = -1", "config key 'model.threshold' must be > 0, got -1"),
        ("[model]\nleak = 1.0", "config key 'model.leak' must be < 1, got 1.0"),
        ("[model]\nerror_start = 20", "config key 'model.error_start' must be < model.time_steps (20), got 20"),
        ('[model]\ntime_steps = "abc"', "config key 'model.time_steps': expected an integer, got \"abc\""),
        ("[model]\ntime_steps = 2.5", "config key 'model.time_steps': expected an integer, got 2.5"),
        ("[model]\nhidden = [10, true]", "config key 'model.hidden': expected a list of integers"),
        ('[model]\nframework = "dfa"', "config key 'model.framework' must be one of "
         + ", ".join(f'"{name}"' for name in registry.names()) + ", got \"dfa\""),
        ("[learning]\ndecay = 1.5", "config key 'learning.decay' must be <= 1, got 1.5"),
        ("[learning]\ndecay_every = 0", "config key 'learning.decay_every' must be > 0, got 0"),
        ("[run]\nshuffle = 1", "config key 'run.shuffle': expected true or false, got 1"),
        ("[seeds]\ninput = -2", "config key 'seeds.input' must be >= 0, got -2"),
        ('[model]\nleak = 0.3\ntau_m = "4*ms"', "'model.leak' and 'model.tau_m' are both given"),
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
    config = load_config(write(tmp_path, '[model]\ndt = "1*ms"\ntau_m = "10*ms"'))
    assert config.model.leak is None
    assert config.leak_per_step == pytest.approx(math.exp(-0.1), rel=1e-15)
    assert config.model.membrane_time_constant == 10 * ms
    # "number unit" (Brian2's own printing) is accepted too
    assert load_config(write(tmp_path, '[model]\ntau_m = "10. ms"')).model.tau_m == 10 * ms


def test_overrides(tmp_path):
    config = load_config(
        CONFIGS / "mnist.toml",
        [
            "learning.learning_rate=5e-4",
            "model.hidden=[100]",
            "data.dataset=fashion-mnist",  # bare string, not TOML syntax
            "model.dt=1*ms",
            "model.tau_m=2*ms",  # replaces the file's leak instead of conflicting with it
            "run.shuffle=false",
        ],
    )
    assert config.learning.learning_rate == 5e-4
    assert config.model.hidden == (100,)
    assert config.data.dataset == "fashion-mnist"
    assert config.model.dt == 1 * ms and config.leak_per_step == pytest.approx(math.exp(-0.5))
    assert config.run.shuffle is False
    assert config.run.epochs == 10  # untouched keys keep the file's value


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.hiden=[1]", "config key 'model.hiden' is unknown (did you mean 'model.hidden'?)"),
        ("modle.hidden=[1]", "config section 'modle' is unknown (did you mean 'model'?)"),
        ("model.threshold=-1", "config key 'model.threshold' must be > 0, got -1"),
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
        ["model.tau_m=4.153*ms", "model.dt=0.1*ms"],
        ["model.dt=0.30000000000000004*ms", "learning.sleep=true", "data.data_dir=/tmp/a \"b\""],
    ],
)
def test_round_trip_through_toml(tmp_path, overrides):
    config = load_config(CONFIGS / "mnist.toml", overrides)
    text = config_to_toml(config)
    table = tomllib.loads(text)
    # the core sections, then the section of every registered framework that declares one
    declared = {spec.section.name for spec in registry.frameworks().values() if spec.section is not None}
    assert set(table) == {"model", "learning", "data", "run", "seeds"} | declared
    assert {"bioleaf", "scmicro"} <= declared
    for section, declared_section in sections().items():  # every key written (leak or tau_m, whichever is set)
        names = {f.name for f in dataclasses.fields(declared_section.schema)}
        assert names - {"leak", "tau_m"} <= set(table[section]) <= names, section
    assert config_from_dict(table) == config
    assert load_config(write(tmp_path, text)) == config
    assert config_from_dict(table).leak_per_step == config.leak_per_step


def test_config_from_dict_matches_file():
    with open(CONFIGS / "mnist.toml", "rb") as handle:
        table = tomllib.load(handle)
    assert config_from_dict(table) == load_config(CONFIGS / "mnist.toml")
    assert config_from_dict({}) == Config()


def test_config_is_frozen():
    config = Config()
    with pytest.raises(AttributeError):
        config.model.threshold = 1.0


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


@pytest.mark.parametrize("override, message", [
    ("model.surrogate=exponential", "config key 'model.surrogate': e-prop does not read it (of [model] it reads "
                                    "framework, hidden, time_steps, dt; set eprop.surrogate instead)"),
    ("model.leak=0.5", "config key 'model.leak': e-prop does not read it (of [model] it reads framework, hidden, "
                       "time_steps, dt; its own settings are in [eprop])"),
])
def test_a_model_key_the_framework_ignores_is_refused(override, message):
    """A framework that declares the [model] keys it reads refuses a change of any other one."""
    with pytest.raises(ConfigError) as error:
        load_config(CONFIGS / "eprop-mnist.toml", [override])
    assert str(error.value) == message
    # its defaults, as a resolved config.toml writes them, and the keys it reads pass
    resolved = load_config(CONFIGS / "eprop-mnist.toml", ["model.hidden=[50]"])
    assert config_from_dict(tomllib.loads(config_to_toml(resolved))) == resolved
