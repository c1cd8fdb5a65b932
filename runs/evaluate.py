"""``apical evaluate``: the test accuracy of a results directory's checkpoint, read-only.

Nothing is written into the directory, so a training running in it is left alone and an archived
or shared run can be scored. The network is compiled into a slot of a private cache of builds
(runs/builds.py, :func:`~apical.runs.builds.evaluation_builds`), held by a file lock while it is
used: a second evaluation of the same model reuses the compiled project and compiles nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from apical.circuits import registry
from apical.circuits.backend import DEVICES
from apical.runs.builds import claim_slot, evaluation_builds
from apical.runs.config import load_config
from apical.runs.datasets import load_dataset
from apical.runs.results import load_checkpoint
from apical.runs.train import chunk_size, evaluation_counts, make_framework


def directory_counts(directory, device: str | None = None, checkpoint: str = "latest"):
    """Output spike counts [N, n_out] of a results directory's checkpoint on its test set, with
    the labels, config and checkpoint used. ``checkpoint``: "latest" (the newest periodic one),
    "selected" (the one chosen on validation) or a file's path."""
    directory = Path(directory)
    # Scoring takes no learning step, so the run's optimizer does not matter; plain steps are what every
    # framework's networks accept on every device (BioGrad's Adam runs on its numpy form only).
    overrides = [f"run.device={json.dumps(device)}", 'learning.optimizer="sgd"'] if device else []
    config = load_config(directory / "config.toml", overrides)
    path, state, _ = load_checkpoint(directory, checkpoint, "evaluate")
    dataset = load_dataset(config)
    chunk = chunk_size(len(dataset.train_labels), config.run.chunk_samples, config.learning.batch_size)
    slot, held = claim_slot(evaluation_builds())
    try:
        framework = make_framework(config, dataset.n_inputs, dataset.n_classes, chunk, slot)
        framework.load_state_arrays(state)
        counts = evaluation_counts(framework, dataset, config, chunk)
    finally:
        held.close()
    return counts, dataset.test_labels, config, path


def register(commands) -> None:
    """``apical evaluate``."""
    parser = commands.add_parser("evaluate", help="test accuracy of a results directory's checkpoint "
                                                  "(--report: per-class readout diagnostics)")
    parser.add_argument("directory")
    parser.add_argument("--device", choices=list(DEVICES),
                        help=f"overrides the run's device (numpy: {', '.join(registry.numpy_forms())})")
    parser.add_argument("--checkpoint", default="latest",
                        help="latest (default), selected (chosen on validation) or a checkpoint file")
    parser.add_argument("--report", action="store_true",
                        help="also write evaluation.json, evaluation.md and figures/confusion.png: per-class "
                             "accuracy, confusion, readout ties and silent output cells")
    parser.set_defaults(handler=command)


def command(args) -> int:
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
