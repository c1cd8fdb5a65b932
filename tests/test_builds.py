"""Shared folders of compiled projects (runs/builds.py, apical train --build-dir): slots held by
a lock, and a main source that is the same in every process that builds one model, so a reused
project compiles nothing (tests/test_faults.py checks the object files of runs that reuse one)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from apical.circuits.backend import clock_settings_in_name_order
from apical.runs.builds import claim_slot, evaluation_builds
from apical.runs.files import hold_lock


def test_a_held_slot_sends_the_next_run_to_the_next_slot(tmp_path):
    first, first_lock = claim_slot(tmp_path)
    second, second_lock = claim_slot(tmp_path)
    assert (first.name, second.name) == ("slot-0", "slot-1")
    # A lock held by another process counts the same as one held here.
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from apical.runs.files import hold_lock
        from pathlib import Path
        held = hold_lock(Path({str(tmp_path / "slot-2" / ".lock")!r}), wait=None)
        print("held" if held else "refused", flush=True)
        time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        third, third_lock = claim_slot(tmp_path)
        assert third.name == "slot-3"
        third_lock.close()
    finally:
        holder.kill()
        holder.wait()
    first_lock.close()
    again, again_lock = claim_slot(tmp_path)
    assert again.name == "slot-0", "a slot given back is taken again"
    assert hold_lock(tmp_path / "slot-1" / ".lock", wait=0.2) is None, "slot-1 is still held"
    again_lock.close()
    second_lock.close()


def test_clock_settings_are_sorted_by_clock_and_nothing_else_moves():
    source = textwrap.dedent("""\
        int main() {
            _array_sample_end_clock_timestep[0] = 0;
            _array_sample_end_clock_dt[0] = 0.04;
            _array_hidden_clock_timestep[0] = 0;
            _array_sample_end_clock_dt[0] = 0.04;
            _array_hidden_clock_t[0] = 0.0;
            x = 1;
            _array_b_clock_t[0] = 0.0;
            _array_a_clock_t[0] = 0.0;
            network.clear();
            network.add(&hidden_clock, _run_hidden_stateupdater);
            network.add(&z_clock, NULL);
            network.add(&a_clock, NULL);
            network.run(1.0, NULL, 10.0);
        }""")
    assert clock_settings_in_name_order(source) == textwrap.dedent("""\
        int main() {
            _array_hidden_clock_timestep[0] = 0;
            _array_hidden_clock_t[0] = 0.0;
            _array_sample_end_clock_timestep[0] = 0;
            _array_sample_end_clock_dt[0] = 0.04;
            _array_sample_end_clock_dt[0] = 0.04;
            x = 1;
            _array_a_clock_t[0] = 0.0;
            _array_b_clock_t[0] = 0.0;
            network.clear();
            network.add(&hidden_clock, _run_hidden_stateupdater);
            network.add(&a_clock, NULL);
            network.add(&z_clock, NULL);
            network.run(1.0, NULL, 10.0);
        }""")
    # Code objects run in the order Brian2 scheduled them: those lines never move.
    scheduled = "network.add(&b_clock, _run_b);\nnetwork.add(&a_clock, _run_a);"
    assert clock_settings_in_name_order(scheduled) == scheduled


def test_evaluate_compiles_into_a_slot_of_its_private_cache_and_gives_it_back(tmp_path, monkeypatch):
    """apical evaluate builds in $APICAL_BUILD_CACHE (else $XDG_CACHE_HOME/apical/builds), never in the
    results directory, holding its slot only while it runs, so the next evaluation finds the project."""
    import apical.runs.evaluate as evaluate
    from apical.runs.config import load_config
    from apical.runs.train import train
    from tests.test_train import write_config

    monkeypatch.delenv("APICAL_BUILD_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert evaluation_builds() == tmp_path / "xdg" / "apical" / "builds"
    monkeypatch.setenv("APICAL_BUILD_CACHE", str(tmp_path / "cache"))
    assert evaluation_builds() == tmp_path / "cache"

    run = tmp_path / "run"
    train(load_config(write_config(tmp_path), ["data.train_samples=100", "run.eval_every=0"]), run)
    built_in, original = [], evaluate.make_framework

    def recording(config, n_in, n_out, chunk, build_dir):
        built_in.append((build_dir, hold_lock(build_dir / ".lock", wait=None)))
        return original(config, n_in, n_out, chunk, build_dir)

    monkeypatch.setattr(evaluate, "make_framework", recording)
    for _ in range(2):
        evaluate.directory_counts(run)
    assert [folder for folder, _ in built_in] == [tmp_path / "cache" / "slot-0"] * 2
    assert [held for _, held in built_in] == [None, None], "the slot was held while the network was built"
    assert hold_lock(tmp_path / "cache" / "slot-0" / ".lock", wait=None) is not None, "the slot was given back"
