"""A trained run in a notebook: its config, framework, checkpointed state and test inputs in one
call, and its Brian2 network ready for monitors in a second.

    from brian2 import StateMonitor, ms
    from apical.runs.notebook import load_run

    run = load_run("results/mnist-quick")             # the newest checkpoint ("selected", or a file)
    run.state["weights_1"]                           # every learned array, by its checkpoint name
    spikes, labels = run.test_samples(1)             # test digit 0, coded as evaluations code it
    objects = run.framework().brian_network(spikes, labels)   # runtime device, the run's state
    membrane = StateMonitor(objects["layers"][0], ["v", "apical"], record=True)
    objects["network"].add(membrane)
    objects["network"].run(objects["duration"])

docs/notebook.md walks through this example with a figure.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from apical.circuits import registry
from apical.circuits.framework import Framework, FrameworkSpec
from apical.runs.config import Config, load_config
from apical.runs.datasets import Dataset, encode, load_dataset
from apical.runs.results import load_checkpoint, read_metrics
from apical.runs.train import make_framework

__all__ = ["Run", "load_run"]


@dataclass
class Run:
    """A results directory read back: what ran (``config``, ``spec``) and what it learned
    (``state``, the checkpoint's named arrays; ``progress``: samples seen and timings)."""

    directory: Path
    config: Config
    spec: FrameworkSpec
    checkpoint: Path
    state: dict[str, np.ndarray]
    progress: dict
    metrics: list[dict]
    _dataset: Dataset | None = field(default=None, repr=False)

    @property
    def dataset(self) -> Dataset:
        """The run's data, split as it trained (read once, when first asked for)."""
        if self._dataset is None:
            self._dataset = load_dataset(self.config)
        return self._dataset

    def test_samples(self, count: int = 1, first: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Test samples ``first`` ... ``first + count - 1``: spike rasters [count, T, n_in], coded
        with the run's input seed exactly as its evaluations coded them, and their labels."""
        data = self.dataset
        stop = min(first + count, len(data.test_labels))
        spikes = encode(data.test_inputs[first:stop], self.config.model.time_steps, self.config.seeds.input,
                        "test", first)
        return spikes, data.test_labels[first:stop]

    def framework(self, device: str = "runtime", samples_per_run: int = 1, build_dir=None) -> Framework:
        """The run's network with the checkpoint's state, built for runs of ``samples_per_run``
        samples on ``device`` (runtime by default: nothing to compile, monitors can be added)."""
        config = replace(self.config, run=replace(self.config.run, device=device))
        data = self.dataset
        framework = make_framework(config, data.n_inputs, data.n_classes, samples_per_run, build_dir)
        framework.load_state_arrays(self.state)
        return framework


def load_run(directory, checkpoint: str = "latest") -> Run:
    """Read a results directory (``apical train --out DIR``): its resolved config, its framework's
    declaration, and the state of a checkpoint — "latest" (the newest periodic one), "selected"
    (the one chosen on held-out validation samples) or a checkpoint file's path."""
    directory = Path(directory)
    config = load_config(directory / "config.toml")
    path, state, progress = load_checkpoint(directory, checkpoint, "load")
    return Run(directory, config, registry.get(config.model.framework), path, state, progress,
               read_metrics(directory))
