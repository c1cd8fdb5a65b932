"""What a run was built with is recorded (model.md, model.json, source.diff), and nothing scores or
replays an edited model against references that implement the published one."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace

import pytest

from apical.circuits import registry
from apical.circuits.biograd import framework as biograd_framework
from apical.circuits.biograd.network import BioGradNetwork, BioGradSettings
from apical.circuits.provenance import EquationRecord, check_against_reference, load_reference
from apical.models.soma import SomaEquations, SomaParameters
from apical.models.surrogate import FAMILIES
from apical.runs.config import ConfigError, config_from_dict
from apical.runs.equations import reference_records
from apical.runs.train import TrainingError, train

TINY = {"model": {"hidden": [12], "time_steps": 6}, "biograd": {"error_start": 2},
        "learning": {"learning_rate": 0.05},
        "data": {"dataset": "mnist", "train_samples": 20, "test_samples": 10, "validation_samples": 0},
        "run": {"device": "runtime", "epochs": 1, "chunk_samples": 10, "eval_every": 10, "checkpoint_every": 10,
                "precision": "float64"}}
EDITED_RESET = "v -= theta"  # reset by subtraction: no reference implements it


def with_keys(tree, **sections):
    return {**tree, **{name: {**tree.get(name, {}), **values} for name, values in sections.items()}}


@pytest.mark.oracle
@pytest.mark.parametrize("name", [n for n, spec in registry.frameworks().items() if spec.reference_file])
def test_the_source_builds_exactly_the_equations_the_references_implement(name):
    """Fails when an equation is edited without its references: the message names the code."""
    spec = registry.get(name)
    shipped = load_reference(spec)
    assert shipped is not None and set(shipped) == set(FAMILIES)
    for family in FAMILIES:
        records = reference_records(spec, family)
        built = {block.digest: block for record in records for block in record.blocks}
        new = [f"{b.owner} {b.role}: {b.text!r}" for d, b in built.items() if d not in shipped[family]]
        assert not new, (f"{spec.title} ({family}) builds code its references were not checked against: "
                         + "; ".join(new[:3]) + ". If the oracle and numpy form implement it too, run "
                         "`apical equations --update-references`")
        assert set(built) == shipped[family], f"{spec.title} ({family}): the reference file lists code no longer built"


def test_a_hand_edited_equation_is_named_and_the_published_ones_pass():
    spec = registry.get("biograd")
    published = EquationRecord.of("biograd", "rectangular", {"wake": BioGradNetwork(BioGradSettings(sizes=(5, 4, 3)), 1)})
    assert check_against_reference(spec, published).matches
    edited_settings = BioGradSettings(sizes=(5, 4, 3), soma_equations=replace(SomaEquations(), reset=EDITED_RESET))
    edited = EquationRecord.of("biograd", "rectangular", {"wake": BioGradNetwork(edited_settings, 1)})
    verdict = check_against_reference(spec, edited)
    assert not verdict.matches
    assert [(b.role, b.text) for b in verdict.unmatched] == [("reset spike", EDITED_RESET)]
    assert verdict.holders == (("hidden_1", "output"),), "every group built with the edited code"
    assert "hidden_1, output reset spike: 'v -= theta'" in verdict.reason()
    # the same code under another family is another model: the rectangular reference does not hold it
    triangular = EquationRecord.of("biograd", "rectangular", {"wake": BioGradNetwork(
        BioGradSettings(sizes=(5, 4, 3), soma=SomaParameters(surrogate="triangular")), 1)})
    assert [b.owner for b in check_against_reference(spec, triangular).unmatched] == ["hidden_1_after_threshold"]


def test_the_record_holds_the_run_regularly_code_groups_contain():
    """Code a group runs regularly (the input raster's reader, each layer's boundary code) belongs to
    the group, not to the network's own list: the record reads it there too, so editing it is seen."""
    record = EquationRecord.of("biograd", "rectangular", {"wake": BioGradNetwork(BioGradSettings(sizes=(5, 4, 3)), 1)})
    code = {b.owner: b.text for b in record.blocks if b.kind == "CodeRunner"}
    assert code["input_read"].startswith("spiked = input_raster(t, i)")
    assert {"hidden_1_bias", "hidden_1_sample_end", "output_minibatch_end", "error_step"} <= set(code)


def test_a_record_of_the_first_version_compares_without_the_code_it_did_not_read():
    """A run recorded before groups' run_regularly code was read (version 1) still resumes: the code
    runners it does not name are left out of the comparison, and any block it holds still counts."""
    record = EquationRecord.of("biograd", "rectangular", {"wake": BioGradNetwork(BioGradSettings(sizes=(5, 4, 3)), 1)})
    first = replace(record, blocks=[b for b in record.blocks if b.owner != "input_read"], version=1)
    assert record.digests != first.digests and record.as_recorded_for(first).digests == first.digests
    assert record.as_recorded_for(record) is record
    edited = replace(first, blocks=[replace(b, text=b.text + "\nv = 0") if b.owner == "hidden_1_bias" else b
                                    for b in first.blocks])
    assert record.as_recorded_for(edited).digests != edited.digests


def test_a_run_records_its_equations_and_the_surrogate_it_used(tmp_path):
    train(config_from_dict(with_keys(TINY, biograd={"surrogate": "exponential"})), tmp_path / "run")
    markdown = (tmp_path / "run" / "model.md").read_text()
    assert "pseudo_derivative = gamma * exp(-abs(v - theta) / window)" in markdown
    assert "### Synapses `forward_1`" in markdown and "v_post += w" in markdown
    record = EquationRecord.from_dict(json.loads((tmp_path / "run" / "model.json").read_text()))
    assert record.surrogate == "exponential"
    assert check_against_reference(registry.get("biograd"), record).matches
    from apical.runs.analyze import analyze

    analyze(tmp_path / "run", n_samples=4)  # scored against the BPTT of the same (exponential) g
    analysis = json.loads((tmp_path / "run" / "analysis.json").read_text())
    assert analysis["update_backprop_cosine"]["layer_0"] > 0.5


@pytest.fixture
def edited_biograd(monkeypatch):
    """BioGrad whose soma resets by subtraction, as if models/soma.py had been edited by hand."""
    original = biograd_framework.biograd_settings

    def edited(config, n_in, n_out):
        return replace(original(config, n_in, n_out), soma_equations=replace(SomaEquations(), reset=EDITED_RESET))

    monkeypatch.setattr(biograd_framework, "biograd_settings", edited)


def test_an_edited_model_trains_records_itself_and_the_numpy_form_refuses(tmp_path, edited_biograd):
    summary = train(config_from_dict(TINY), tmp_path / "edited")
    assert summary["samples_seen"] == 20
    assert "reset spike:\n\n```\nv -= theta\n```" in (tmp_path / "edited" / "model.md").read_text()
    with pytest.raises(ConfigError, match=r"config key 'run.device' = \"numpy\": the numpy form implements BioGrad's "
                                          r"reference equations, but this source and config build 1 piece\(s\) of "
                                          r"model code that no reference implements \(hidden_1, output reset spike"):
        train(config_from_dict(with_keys(TINY, run={"device": "numpy"})), tmp_path / "numpy")
    assert not (tmp_path / "numpy" / "checkpoints").exists() or not any((tmp_path / "numpy" / "checkpoints").iterdir())


def test_a_resume_with_other_equations_is_refused(tmp_path, monkeypatch):
    train(config_from_dict(with_keys(TINY, run={"epochs": 1})), tmp_path / "run")
    original = biograd_framework.biograd_settings
    monkeypatch.setattr(biograd_framework, "biograd_settings", lambda config, n_in, n_out: replace(
        original(config, n_in, n_out), soma_equations=replace(SomaEquations(), reset=EDITED_RESET)))
    with pytest.raises(TrainingError, match="equations differ from those the run was built with .* reset spike"):
        train(config_from_dict(with_keys(TINY, run={"epochs": 2})), tmp_path / "run", resume=True)


def test_analyze_states_what_it_cannot_score_and_compare_forms_refuses(tmp_path, edited_biograd):
    from apical.runs.analyze import analyze
    from apical.runs.compare_forms import compare_forms

    run = tmp_path / "edited"
    train(config_from_dict(with_keys(TINY, model={"hidden": [12, 8]})), run)
    report = analyze(run, n_samples=4)
    vocabulary = next(e["claims"] for e in report["entries"] if "claims" in e)
    text = json.dumps(vocabulary)
    assert "not scored: the run's network holds 1 piece(s) of model code that no reference implements" in text
    assert any("BioGrad's own claims not scored" in line for line in report["summary"])
    assert "learning curve" in " ".join(report["summary"])  # the generic checks still ran
    analysis = json.loads((run / "analysis.json").read_text())
    assert "update_backprop_cosine" not in analysis  # no cosine against the unedited oracle
    with pytest.raises(ConfigError, match="compare-forms: the numpy form implements BioGrad's reference equations"):
        compare_forms(run, chunks=1, device="runtime")


def test_an_equation_edited_in_the_config_is_built_recorded_and_refused_by_the_numpy_form(tmp_path):
    edited = with_keys(TINY, model={"equations": {"soma.reset": EDITED_RESET}})
    train(config_from_dict(edited), tmp_path / "run")
    assert 'equations = {"soma.reset" = "v -= theta"}' in (tmp_path / "run" / "config.toml").read_text()
    record = EquationRecord.from_dict(json.loads((tmp_path / "run" / "model.json").read_text()))
    verdict = check_against_reference(registry.get("biograd"), record)
    assert [(b.owner, b.role, b.text) for b in verdict.unmatched] == [("hidden_1", "reset spike", EDITED_RESET)]
    with pytest.raises(ConfigError, match="the numpy form implements BioGrad's reference equations"):
        train(config_from_dict(with_keys(edited, run={"device": "numpy"})), tmp_path / "numpy")
    # the published code written out by hand is the published model
    same = with_keys(TINY, model={"equations": {"soma.reset": "v = 0"}}, run={"device": "numpy"})
    assert train(config_from_dict(same), tmp_path / "same")["samples_seen"] == 20
    with pytest.raises(ConfigError, match="'soma.rest' names no part of this model; its parts are soma.state"):
        config_from_dict(with_keys(TINY, model={"equations": {"soma.rest": "v = 0"}}))


def test_the_source_diff_holds_edits_and_new_files_and_is_empty_for_a_clean_tree(tmp_path):
    from apical.runs.equations import source_diff

    def git(*arguments):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *arguments], cwd=tmp_path, check=True,
                       capture_output=True)

    git("init", "-q")
    (tmp_path / "soma.py").write_text('RESET = "v = 0"\n')
    (tmp_path / ".gitignore").write_text("results/\n")
    git("add", ".")
    git("commit", "-q", "-m", "published")
    assert source_diff(tmp_path) == ""
    (tmp_path / "soma.py").write_text('RESET = "v -= theta"\n')
    (tmp_path / "my_rule.py").write_text('RULE = "w += eta * pre * post"\n')
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "metrics.csv").write_text("ignored\n")
    diff = source_diff(tmp_path)
    assert '-RESET = "v = 0"\n+RESET = "v -= theta"' in diff
    assert '+RULE = "w += eta * pre * post"' in diff and "new file" in diff
    assert "metrics.csv" not in diff
    assert source_diff(tmp_path / "not-a-checkout") == ""
