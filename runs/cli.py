"""The ``apical`` command line: train, evaluate, analyze, bench, compare-forms, sweep, report."""

from __future__ import annotations

import argparse
import json
import sys

from apical.circuits import registry
from apical.runs.config import ConfigError
from apical.runs.datasets import DatasetError

#: What ``run.device`` and ``--device`` may name; numpy only for frameworks with a numpy form.
DEVICES = ("cpp", "cuda", "runtime", "numpy")


def _train(args) -> int:
    from apical.runs.train import load_and_train

    summary = load_and_train(args.config, args.set, args.out, args.resume, args.device)
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

        for line in write_readout_report(args.directory, counts, labels, config, checkpoint):
            print(line)
    return 0


def _delegate(module: str, args) -> int:
    """Commands that live in their own module expose ``main(args) -> int``."""
    import importlib

    return importlib.import_module(module).main(args)


def _bench(args) -> int:
    """``apical bench``: BioGrad's network beside batched numpy by default, any framework's own bench
    with --framework."""
    spec = registry.get(args.framework)
    return spec.bench(args)


def main(argv=None) -> int:
    with_numpy = ", ".join(registry.numpy_forms())
    benches = [name for name, spec in registry.frameworks().items() if spec.bench is not None]
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
    analyze.set_defaults(handler=lambda args: _delegate("apical.runs.analyze", args))

    bench = commands.add_parser("bench", help="training speed of the Brian2 network beside batched numpy")
    bench.add_argument("--device", choices=["cpp", "cuda", "runtime"], default="cpp")
    bench.add_argument("--samples", type=int, default=1000, help="training samples per timed run")
    bench.add_argument("--threads", type=int, default=1, help="OpenMP threads for cpp (0 = all cores)")
    bench.add_argument("--widths", help="with --device cuda: first hidden layer widths, e.g. 500,2000,8000")
    bench.add_argument("--framework", choices=benches, default=benches[0] if benches else None,
                       help="whose bench to run (default: the first registered framework's; each framework "
                            "declares its own)")
    bench.set_defaults(handler=_bench)

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
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (ConfigError, DatasetError) as error:
        print(f"apical: {error}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        print(f"apical: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
