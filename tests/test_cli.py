"""The `apical` command line: bad input gives one clear line and a non-zero exit."""

from __future__ import annotations

import subprocess
import sys


def apical(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "apical.runs.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_unknown_config_key_is_named(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[model]\nhiden = [10]\n")
    result = apical("train", str(config), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    message = [line for line in result.stderr.splitlines() if line.startswith("apical:")]
    assert len(message) == 1 and "model.hiden" in message[0] and "model.hidden" in message[0]


def test_bad_override_unit_is_named(tmp_path):
    config = tmp_path / "ok.toml"
    config.write_text("[model]\nhidden = [10]\n")
    result = apical("train", str(config), "--set", 'model.dt="5*volt"', "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "model.dt" in result.stderr and "time" in result.stderr


def test_evaluate_without_checkpoint_fails_clearly(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.toml").write_text("[run]\ndevice = \"runtime\"\n")
    result = apical("evaluate", str(tmp_path / "run"))
    assert result.returncode == 1
    assert "holds no checkpoint" in result.stderr


def test_debug_shows_the_traceback_of_the_one_line_error(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[model]\nhiden = [10]\n")
    quiet = apical("train", str(config), "--out", str(tmp_path / "out"))
    assert "Traceback" not in quiet.stderr
    loud = apical("--debug", "train", str(config), "--out", str(tmp_path / "out"))
    assert loud.returncode == 1
    assert "Traceback" in loud.stderr and "ConfigError: config key 'model.hiden'" in loud.stderr
