"""``apical compare-forms``: replay a run's next training chunks from one of its checkpoints on the
Brian2 networks and on the same model's numpy form, side by side, and say where they part.

BioGrad and the SC microcircuit each have a numpy form (``run.device = "numpy"``) that the tests
hold equal to the Brian2 circuit to 1e-9 in float64 on small networks. This command makes the same
check on a user's own run, at full size and at the point in training the checkpoint holds: both
forms start from the checkpoint's state, train the chunks that would have followed (same samples,
spikes, sleep noise and learning rate as ``apical train``, continuing past the run's last epoch as
``--resume`` with more epochs would) and, after each chunk, the differences
between their states, the share of samples whose output spike counts agree, and the framework's
metrics (BioGrad: feedback-alignment angles) are printed.

In float64 the two forms should agree to rounding; in float32 they differ by rounding, which can
grow once a spike flips at a threshold — the size of that growth at a given learning rate is
what the replay measures.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from apical.runs.config import ConfigError, load_config
from apical.circuits import registry
from apical.runs.equations import read_record, record_for, refuse_unless_referenced
from apical.runs.datasets import load_dataset
from apical.runs.errors import TrainingError
from apical.runs.results import load_checkpoint
from apical.runs.train import chunk_size, make_framework, training_chunk

def compare_forms(directory, chunks: int = 3, checkpoint: str = "latest", device: str | None = None,
                  precision: str | None = None, build_dir=None, report=None) -> list[dict]:
    """Train ``chunks`` chunks from a checkpoint of the results ``directory`` on the Brian2
    ``device`` (default: the run's, or cpp if the run used numpy) and on the numpy form, both in
    ``precision`` (default: the run's). Returns one row per chunk; ``report(row)`` is called as
    each is done."""
    directory = Path(directory)
    base = load_config(directory / "config.toml")
    if not registry.get(base.model.framework).has_numpy_form:
        raise ConfigError(f"config key 'model.framework': {base.model.framework!r} has no numpy form to compare "
                          f"with; compare-forms works for {', '.join(registry.numpy_forms())}")
    brian_device = device or (base.run.device if base.run.device != "numpy" else "cpp")
    if brian_device == "numpy":
        raise ConfigError("compare-forms compares a Brian2 device (cpp, cuda, runtime) with the numpy form; "
                          "--device numpy compares the numpy form with itself")
    shared = [f"run.precision={json.dumps(precision)}"] if precision else []
    brian_config = load_config(directory / "config.toml", [*shared, f"run.device={json.dumps(brian_device)}"])
    numpy_config = load_config(directory / "config.toml", [*shared, 'run.device="numpy"'])

    path, state, progress = load_checkpoint(directory, checkpoint, "start from")
    if "samples_seen" not in progress:
        raise TrainingError(f"{path} records no training position (progress); use a periodic checkpoint")
    seen = int(progress["samples_seen"])

    dataset = load_dataset(brian_config)
    n_train = len(dataset.train_labels)
    chunk = chunk_size(n_train, brian_config.run.chunk_samples, brian_config.learning.batch_size)
    build_root = Path(build_dir) if build_dir else Path(tempfile.mkdtemp(prefix="apical-compare-"))
    started = time.perf_counter()
    numpy_form = make_framework(numpy_config, dataset.n_inputs, dataset.n_classes, chunk, build_root / "numpy")
    # Both forms must be the model the references implement: the source's and the run's own equations.
    spec = registry.get(base.model.framework)
    refuse_unless_referenced(numpy_config, record_for(spec, numpy_config, numpy_form), "compare-forms: the numpy form")
    recorded = read_record(directory)
    if recorded is not None:
        refuse_unless_referenced(base, recorded, "compare-forms: the numpy form (against the run's model.md)")
    brian = make_framework(brian_config, dataset.n_inputs, dataset.n_classes, chunk, build_root)
    compile_seconds = time.perf_counter() - started
    brian.load_state_arrays(state)
    numpy_form.load_state_arrays(state)

    rows = []
    for _ in range(chunks):  # past the run's last epoch, the replay goes on as --resume with more epochs would
        indices, spikes, arguments = training_chunk(brian_config, dataset, chunk, seen)
        labels = dataset.train_labels[indices]
        brian_counts = brian.train_chunk(spikes, labels, **arguments)
        numpy_counts = numpy_form.train_chunk(spikes, labels, **arguments)
        brian_state, numpy_state = brian.state_arrays(), numpy_form.state_arrays()
        seen += len(indices)
        row = {
            "samples_seen": seen,
            "epoch": seen / n_train,
            "output_counts_equal": float(np.all(brian_counts == numpy_counts, axis=1).mean()),
            "max_difference": {name: float(np.abs(np.asarray(brian_state[name], float)
                                                  - np.asarray(numpy_state[name], float)).max())
                               for name in brian_state},
            "brian2_metrics": brian.metrics(),
            "numpy_metrics": numpy_form.metrics(),
            "compile_seconds": compile_seconds,
        }
        rows.append(row)
        if report:
            report(row)
    return rows


def _print_row(row: dict) -> None:
    worst = max(row["max_difference"], key=row["max_difference"].get)
    print(f"after {row['samples_seen']} samples (epoch {row['epoch']:.3f}): output counts equal on "
          f"{100 * row['output_counts_equal']:.1f}% of samples; largest state difference "
          f"{row['max_difference'][worst]:.3g} ({worst})", flush=True)
    for name in sorted(set(row["brian2_metrics"]) | set(row["numpy_metrics"])):
        print(f"    {name}: Brian2 {row['brian2_metrics'].get(name)}  numpy {row['numpy_metrics'].get(name)}")


def register(commands) -> None:
    """``apical compare-forms``."""
    from apical.circuits import registry
    from apical.circuits.backend import BRIAN_DEVICES

    parser = commands.add_parser("compare-forms", help="replay chunks of a run from a checkpoint on Brian2 and on "
                                                       f"the numpy form side by side ({', '.join(registry.numpy_forms())})")
    parser.add_argument("directory", help="a results directory (apical train --out)")
    parser.add_argument("--chunks", type=int, default=3, help="training chunks to replay (default 3)")
    parser.add_argument("--checkpoint", default="latest", help="latest (default), selected or a checkpoint file")
    parser.add_argument("--device", choices=list(BRIAN_DEVICES),
                        help="the Brian2 side's device (default: the run's; cpp if the run used numpy)")
    parser.add_argument("--precision", choices=["float32", "float64"], help="both sides (default: the run's)")
    parser.add_argument("--build-dir", help="where the Brian2 side is compiled (default: a temporary folder)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.set_defaults(handler=main)


def main(args) -> int:
    print(f"replaying {args.chunks} chunk(s) of {args.directory} from its {args.checkpoint} checkpoint "
          f"on Brian2 and on the numpy form", file=sys.stderr, flush=True)
    rows = compare_forms(args.directory, args.chunks, args.checkpoint, args.device, args.precision,
                         args.build_dir, report=_print_row)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0
