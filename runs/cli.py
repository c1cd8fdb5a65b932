"""The ``apical`` command line: train, evaluate, floor, analyze, bench, compare-forms, sweep, report, compare."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from apical.circuits import registry
from apical.circuits.traps import model_errors
from apical.runs.config import ConfigError
from apical.runs.datasets import DatasetError
from apical.runs.train import Interrupted

#: What ``run.device`` and ``--device`` may name; numpy only for frameworks with a numpy form.
DEVICES = ("cpp", "cuda", "runtime", "numpy")


def _train(args) -> int:
    from apical.runs.train import load_and_train

    if args.build_dir is None:
        summary = load_and_train(args.config, args.set, args.out, args.resume, args.device)
    else:
        from apical.runs.builds import claim_slot

        slot, held = claim_slot(Path(args.build_dir))
        try:
            summary = load_and_train(args.config, args.set, args.out, args.resume, args.device, build_dir=slot)
        finally:
            held.close()
    print(f"final test accuracy: {100 * summary['final_test_accuracy']:.2f}%  "
          f"({summary['samples_seen']} training samples, {summary['timings']['wall_seconds']:.0f} s wall, "
          f"{summary['timings']['train_ms_per_sample']:.2f} ms per training sample)")
    if "selected" in summary:
        chosen = summary["selected"]
        print(f"selected on validation ({100 * chosen['validation_accuracy']:.2f}%) after {chosen['samples_seen']} "
              f"samples: test accuracy {100 * chosen['test_accuracy']:.2f}%  ({chosen['checkpoint']})")
    return 0


def _evaluate(args) -> int:
    from apical.runs.train import directory_counts

    counts, labels, config, checkpoint = directory_counts(args.directory, device=args.device,
                                                          checkpoint=args.checkpoint)
    print(f"test accuracy: {100 * float((counts.argmax(axis=1) == labels).mean()):.2f}%  ({checkpoint.name})")
    if args.report:
        from apical.analysis.readout import write_readout_report

        title = registry.get(config.model.framework).run_title(config)
        try:
            for line in write_readout_report(args.directory, counts, labels, config.data.dataset, title, checkpoint):
                print(line)
        except OSError as error:
            print(f"apical: cannot write the report into {args.directory} ({error.strerror or error})",
                  file=sys.stderr)
            return 1
    return 0


def _curves(args) -> int:
    from apical.analysis.figures import accuracy_curves
    from apical.runs.train import read_metrics

    runs = []
    for entry in args.runs:
        directory, _, label = entry.partition("=")
        directory = Path(directory)
        if not (directory / "metrics.csv").is_file():
            print(f"apical: {directory} has no metrics.csv (not a results directory)", file=sys.stderr)
            return 1
        summary = directory / "summary.json"
        initial = json.loads(summary.read_text()).get("initial_test_accuracy") if summary.is_file() else None
        runs.append((label or directory.name, read_metrics(directory), initial))
    lines = []
    for entry in args.line:
        value, _, label = entry.partition("=")
        try:
            lines.append((float(value), label))
        except ValueError:
            print(f"apical: --line {entry!r}: give ACCURACY=LABEL with the accuracy in %", file=sys.stderr)
            return 1
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    for written in accuracy_curves(runs, Path(args.out), args.title, lines):
        print(written)
    return 0


def _floor(args) -> int:
    """The linear-readout floor of a config's split (analysis/floor.py): softmax regression on the
    inputs' summary, N-MNIST's events per pixel and polarity in the T-bin window (all of them, and
    as the binned raster the network sees, at most one per bin), an image's intensities."""
    from apical.analysis.floor import linear_readout_floor
    from apical.runs.config import load_config
    from apical.runs.datasets import nmnist_bin_width_us, nmnist_event_counts
    from apical.runs.train import load_dataset

    config = load_config(args.config, args.set)
    data = load_dataset(config)
    if data.is_spiking:
        window_us = config.model.time_steps * nmnist_bin_width_us(config.model.dt)  # the binned window
        features = {"events": [nmnist_event_counts(split, config.data.data_dir or None, len(labels), window_us)[0]
                               for split, labels in (("train", data.train_labels), ("test", data.test_labels))],
                    "binned": [data.train_inputs.sum(axis=1), data.test_inputs.sum(axis=1)]}
    else:
        features = {"intensities": [data.train_inputs, data.test_inputs]}
    rows = {}
    for name, (train, test) in features.items():
        floor = linear_readout_floor(train, data.train_labels, test, data.test_labels, data.n_classes)
        rows[name] = floor.as_dict()
        print(f"{name}: test accuracy {100 * floor.test_accuracy:.2f}%  (train {100 * floor.train_accuracy:.2f}%, "
              f"L2 {floor.penalty:g} chosen on the last {floor.n_validation} of {floor.n_train} training samples; "
              f"{floor.n_test} test samples, {floor.n_features} features)")
    if args.json:
        with open(args.json, "w") as stream:
            json.dump({"config": str(args.config), "overrides": args.set, "floor": rows}, stream, indent=1)
    return 0


def _delegate(module: str, args) -> int:
    """Commands that live in their own module expose ``main(args) -> int``."""
    import importlib

    return importlib.import_module(module).main(args)


def main(argv=None) -> int:
    with_numpy = ", ".join(registry.numpy_forms())
    parser = argparse.ArgumentParser(prog="apical", description="Bio-plausible learning in spiking networks (Brian2)")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a network as a TOML config describes")
    train.add_argument("config", help="a TOML file, e.g. runs/configs/mnist-quick.toml")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set learning.learning_rate=5e-4 (repeatable)")
    train.add_argument("--device", choices=DEVICES,
                       help=f"overrides run.device (numpy: the batched numpy form of {with_numpy}, for sweeps)")
    train.add_argument("--out", help="results directory (default: results/<config name>)")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    train.add_argument("--build-dir", metavar="DIR",
                       help="keep compiled projects in DIR and reuse those that earlier runs of the same model left "
                            "there (cpp, cuda; default: a build/ folder of the results directory)")
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser("evaluate", help="test accuracy of a results directory's checkpoint "
                                                    "(--report: per-class readout diagnostics)")
    evaluate.add_argument("directory")
    evaluate.add_argument("--device", choices=DEVICES,
                          help=f"overrides the run's device (numpy: {with_numpy})")
    evaluate.add_argument("--checkpoint", default="latest",
                          help="latest (default), selected (chosen on validation) or a checkpoint file")
    evaluate.add_argument("--report", action="store_true",
                          help="also write evaluation.json, evaluation.md and figures/confusion.png: per-class "
                               "accuracy, confusion, readout ties and silent output cells")
    evaluate.set_defaults(handler=_evaluate)

    analyze = commands.add_parser("analyze", help="plausibility audits and alignment of a results directory")
    analyze.add_argument("directory")
    analyze.add_argument("--out", help="where analysis.json, plausibility.md and figures/ go (default: the directory; "
                                       "the results directory itself is only read)")
    analyze.set_defaults(handler=lambda args: _delegate("apical.runs.analyze", args))

    floor = commands.add_parser("floor", help="the linear-readout floor of a config's data split: softmax regression "
                                              "on event counts (N-MNIST) or intensities")
    floor.add_argument("config", help="a TOML file, e.g. runs/configs/nmnist.toml")
    floor.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    floor.add_argument("--json", help="also write the numbers to this JSON file")
    floor.set_defaults(handler=_floor)

    curves = commands.add_parser("curves", help="test accuracy per epoch of several results directories in one figure")
    curves.add_argument("runs", nargs="+", metavar="DIR[=LABEL]", help="results directories (label: the directory name)")
    curves.add_argument("--line", action="append", default=[], metavar="ACCURACY=LABEL",
                        help="a horizontal reference line in %%, e.g. --line '82=linear-readout floor' (repeatable)")
    curves.add_argument("--title", default="")
    curves.add_argument("--out", required=True, help="figure path without extension (.png and .pdf are written)")
    curves.set_defaults(handler=_curves)

    names = registry.names()
    bench = commands.add_parser("bench", help="cost per training and test sample of a framework's network, "
                                              "compile time apart (BioGrad's own bench: its Brian2 network beside "
                                              "batched numpy)")
    bench.add_argument("--framework", choices=names,
                       help=f"whose network (default: the model.framework of --config, else {names[0]}); a framework "
                            "with a bench of its own runs that one, every other the generic bench")
    bench.add_argument("--config", help="time this config's network with the generic bench (default: the framework's "
                                        "example config)")
    bench.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key as for apical train (repeatable; selects the generic bench)")
    bench.add_argument("--generic", action="store_true",
                       help="the generic bench even for a framework with a bench of its own")
    bench.add_argument("--device", choices=DEVICES,
                       help="default: cpp for a framework's own bench, run.device for the generic one; runtime with "
                            "--dry-run (numpy: the generic bench of a framework with a numpy form)")
    bench.add_argument("--samples", type=int, help="training samples per timed run (default 1000; a handful with "
                                                    "--dry-run)")
    bench.add_argument("--threads", type=int, help="OpenMP threads for cpp (0 = all cores; default 1, or run.threads "
                                                    "of the generic bench's config)")
    bench.add_argument("--widths", help="BioGrad's bench with --device cuda: first hidden layer widths, e.g. "
                                        "500,2000,8000")
    bench.add_argument("--dry-run", action="store_true",
                       help="a tiny network on a handful of samples, in seconds: checks that the bench runs (its "
                            "numbers say nothing about the real network)")
    bench.set_defaults(handler=lambda args: _delegate("apical.runs.bench", args))

    compare = commands.add_parser("compare-forms", help="replay chunks of a run from a checkpoint on Brian2 and on "
                                                        f"the numpy form side by side ({with_numpy})")
    compare.add_argument("directory", help="a results directory (apical train --out)")
    compare.add_argument("--chunks", type=int, default=3, help="training chunks to replay (default 3)")
    compare.add_argument("--checkpoint", default="latest", help="latest (default), selected or a checkpoint file")
    compare.add_argument("--device", choices=["cpp", "cuda", "runtime"],
                         help="the Brian2 side's device (default: the run's; cpp if the run used numpy)")
    compare.add_argument("--precision", choices=["float32", "float64"], help="both sides (default: the run's)")
    compare.add_argument("--build-dir", help="where the Brian2 side is compiled (default: a temporary folder)")
    compare.add_argument("--json", help="also write the rows to this JSON file")
    compare.set_defaults(handler=lambda args: _delegate("apical.runs.compare_forms", args))

    sweep = commands.add_parser("sweep", help="train a grid of config values x seeds as jobs on a Dask cluster")
    sweep.add_argument("config", help="a TOML file, e.g. runs/configs/mnist-quick.toml")
    sweep.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                       help="values of a config key to sweep, in TOML like --set (repeatable: the grid is their product)")
    sweep.add_argument("--seeds", type=int, default=1, help="seed replicates per grid point (replicate s: every seed + 1000*s)")
    sweep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a key for every job")
    sweep.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler, e.g. tcp://10.0.0.1:8786 "
                       "(default: a local cluster)")
    sweep.add_argument("--workers", type=int, help="worker processes of the local cluster (default: one per core)")
    sweep.add_argument("--out", required=True, help="sweep directory: one results directory per job")
    sweep.set_defaults(handler=lambda args: _delegate("apical.runs.sweep", args))

    report = commands.add_parser("report", help="tables (mean ± s.d. over seeds) and figures across a sweep's jobs")
    report.add_argument("directory", help="a sweep directory (apical sweep --out)")
    report.add_argument("--into", metavar="MARKDOWN", help="also put the table into this file, e.g. docs/results.md")
    report.add_argument("--section", help="with --into: the text between <!-- report:SECTION --> and "
                        "<!-- /report:SECTION --> is replaced, or the block appended (default: the directory's name)")
    report.set_defaults(handler=lambda args: _delegate("apical.runs.report", args))

    equations = commands.add_parser("equations", help="the Brian2 equations a config builds (as a run's model.md), "
                                    "and whether the framework's references implement them")
    equations.add_argument("config", nargs="?", help="a TOML config")
    equations.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    equations.add_argument("--update-references", action="store_true",
                           help="rewrite the built-in frameworks' reference digests from the current source "
                                "(after changing a model and its references together)")
    equations.set_defaults(handler=lambda args: _delegate("apical.runs.equations", args))
    compared = commands.add_parser("compare", help="frameworks side by side: one table (accuracy, paper, cost, events "
                                                   "and energy per training sample, claims) and one figure, from results "
                                                   "directories or from configs trained on a shared budget")
    compared.add_argument("sources", nargs="*", help="results directories and/or config files (.toml)")
    compared.add_argument("--frameworks", metavar="all|NAME,...", help="also the example config of these registered "
                          f"frameworks ({', '.join(names)}), trained on the shared budget")
    compared.add_argument("--out", help="where configs are trained (OUT/<config name>/) and the table and figure go "
                                        "(default for directories only: the current folder)")
    compared.add_argument("--train-samples", type=int, default=2560, help="shared budget: training samples per config "
                          "(default 2560, a multiple of every shipped batch size)")
    compared.add_argument("--test-samples", type=int, default=1000, help="shared budget: test samples (default 1000)")
    compared.add_argument("--epochs", type=int, default=1, help="shared budget: epochs (default 1)")
    compared.add_argument("--dataset", choices=["mnist", "fashion-mnist", "nmnist", "cifar10"],
                          help="train every config on this dataset (default: each config's own)")
    compared.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help="override a key of every config trained (repeatable)")
    compared.add_argument("--workers", type=int, help="train the configs on a local Dask cluster of this many workers")
    compared.add_argument("--scheduler", metavar="ADDRESS", help="train the configs on this Dask scheduler")
    compared.add_argument("--no-analyze", action="store_true", help="read analysis.json as it is (claims: — where absent)")
    compared.add_argument("--analyze-again", action="store_true", help="analyse every results directory again, even "
                                                                        "where its analysis.json is newer than its run")
    compared.add_argument("--published", metavar="TOML", help="the papers' numbers of more frameworks (format of "
                                                              "runs/published.toml)")
    compared.add_argument("--into", metavar="MARKDOWN", help="also put the table into this file, e.g. docs/results.md")
    compared.add_argument("--section", help="with --into: the text between <!-- report:SECTION --> and "
                                            "<!-- /report:SECTION --> is replaced (default: compare)")
    compared.set_defaults(handler=lambda args: _delegate("apical.runs.compare", args))
    args = parser.parse_args(argv)
    try:
        with model_errors():  # Brian2's errors about a network's code: a ModelError (a ConfigError) of one line
            return args.handler(args)
    except Interrupted as error:
        print(f"apical: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("apical: stopped at once by a second signal; --resume continues from the last checkpoint",
              file=sys.stderr)
        return 130
    except (ConfigError, DatasetError) as error:
        print(f"apical: {error}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        print(f"apical: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
