"""BioGrad's sleep phase as a Brian2 network (Tang et al. 2021, §3.4).

During sleep, hidden layer l falls silent and is replaced by signed noise; the layers above
it respond as they do when awake, and the feedback synapses B^l learn by the Hebbian rule of
models/sleep.py. The sleep of one hidden layer never changes what another layer's sleep sees
(only the forward weights matter, and they are fixed during sleep), so the top-down sequence
of the paper runs here as parallel branches, one per hidden layer, in one simulation:

    noise_l ─W^{l+1}→ layer l+1 ─…→ output ─relay→ error units ─B^l (Hebbian)→ noise_l

The neurons of a branch are the sleeping network's own neurons in another phase; their
weights are given to the branch at the start of each sleep (a simulation device, not a
weight copy inside the model: no synapse ever reads another synapse's weight).

A sleep of B_s noise samples of T_s steps lasts B_s·T_s + 1 steps; the last step is the
boundary at which the batch's ΔB is applied.
"""

from __future__ import annotations

import numpy as np
from apical.circuits.biograd.oracle import SleepParameters, sleep_noise_per_layer
from apical.circuits.core import CompiledNetwork, Every, RunValues, Schedule
from apical.models.eligibility import matrix_to_synapses
from apical.models.sleep import (
    NOISE_SOURCE_SAMPLE_END,
    NOISE_SOURCE_STEP,
    SLEEP_ERROR_UNIT_BATCH_END,
    SLEEP_ERROR_UNIT_SAMPLE_END,
    SLEEP_FEEDBACK_SAMPLE_END,
    SLEEP_FEEDBACK_UPDATE,
    make_noise_source,
    make_output_relay,
    make_sleep_error_units,
    make_sleep_feedback,
    make_static_pathway,
)
from apical.models.soma import make_layer


class BioGradSleepNetwork(CompiledNetwork):
    """The sleep phase for every hidden layer of a BioGrad network of ``settings.sizes``: runs of
    one sleep (B_s noise samples of T_s steps), built once per device."""

    def __init__(self, settings, sleep: SleepParameters, device_name: str = "runtime", build_dir=None,
                 threads: int = 1):
        self.settings = settings
        self.sleep = sleep
        super().__init__(sleep.batch_size, sleep.steps, settings.soma.dt, device_name, build_dir, threads,
                         build_key=(settings, sleep), batch_size=sleep.batch_size)

    def table_widths(self) -> dict[str, int]:
        return {f"noise_raster_{l + 1}": n for l, n in enumerate(self.settings.sizes[1:-1])}

    def construct(self, tables) -> dict:
        s, sl = self.settings, self.sleep
        dt = s.soma.dt
        n_layers = len(s.sizes) - 1
        branches = []
        for l in range(n_layers - 1):  # one branch per hidden layer
            noise = make_noise_source(s.sizes[l + 1], tables[f"noise_raster_{l + 1}"], dt, name=f"sleep_noise_{l + 1}")
            layers, pathways, pre = [], [], noise
            for depth, m in enumerate(range(l + 1, n_layers)):
                layer = make_layer(s.sizes[m + 1], s.soma, 1, 1, name=f"sleep_{l + 1}_layer_{m + 1}",
                                   equations=s.soma_equations)
                pathways.append(make_static_pathway(pre, layer, signed=depth == 0,
                                                    name=f"sleep_{l + 1}_forward_{m + 1}"))
                layers.append(layer)
                pre = layer
            error_units = make_sleep_error_units(s.sizes[-1], sl.decay_power, dt, name=f"sleep_{l + 1}_error")
            branches.append({
                "noise": noise, "layers": layers, "pathways": pathways, "error_units": error_units,
                "relay": make_output_relay(layers[-1], error_units, name=f"sleep_{l + 1}_relay"),
                "feedback": make_sleep_feedback(error_units, noise, sl.learning_rate, sl.batch_size,
                                                name=f"sleep_feedback_{l + 1}"),
                "first_layer": l + 1})
        return {"branches": branches}

    def schedule(self, o: dict) -> Schedule:
        """Every object's place in the step, one row each: per branch, the noise, then each layer
        above it as when awake (bias, pathway, threshold), the relay to the error units; at the
        boundaries read the counts (0), clear them (1), apply ΔB at the batch end (2, 3)."""
        rows = []
        for branch in o["branches"]:
            noise, error_units, feedback = branch["noise"], branch["error_units"], branch["feedback"]
            rows += [("groups", 0, Every(noise, NOISE_SOURCE_STEP, f"{noise.name}_step")),
                     ("groups", 1, noise.thresholder["spike"]),
                     ("start", 1, Every(noise, NOISE_SOURCE_SAMPLE_END, f"{noise.name}_sample_end", "sample"))]
            for depth, (layer, pathway) in enumerate(zip(branch["layers"], branch["pathways"])):
                base = 10 * (depth + 1)
                rows += [("groups", -100, layer.state_updater),
                         ("groups", base, Every(layer, self.settings.soma_equations.bias_jump, f"{layer.name}_bias")),
                         ("groups", base + 1, pathway.pre),
                         ("groups", base + 2, layer.thresholder["spike"]),
                         ("start", 1, Every(layer, "v = 0", f"{layer.name}_sample_end", "sample"))]
            rows += [("groups", 10 * (len(branch["layers"]) + 1), branch["relay"].pre),
                     ("start", 0, Every(feedback, SLEEP_FEEDBACK_SAMPLE_END, f"{feedback.name}_sample_end", "sample")),
                     ("start", 1, Every(error_units, SLEEP_ERROR_UNIT_SAMPLE_END, f"{error_units.name}_sample_end",
                                        "sample")),
                     ("start", 2, Every(feedback, SLEEP_FEEDBACK_UPDATE, f"{feedback.name}_update", "minibatch")),
                     ("start", 3, Every(error_units, SLEEP_ERROR_UNIT_BATCH_END, f"{error_units.name}_batch_end",
                                        "minibatch"))]
        return Schedule(rows)

    def draw_noise(self, seed_rng: np.random.Generator) -> list[np.ndarray]:
        """Signed noise [B_s, T_s, n_l] per hidden layer (p drawn once per layer and sleep)."""
        return sleep_noise_per_layer(seed_rng, self.sleep, self.settings.sizes)

    def run_values(self, weights, biases, feedback, noise: list[np.ndarray]) -> RunValues:
        """What a sleep from the given weights is given: its noise and every branch's weights."""
        hidden = self.settings.sizes[1:-1]
        expected = [(self.sleep.batch_size, self.sleep.steps, n) for n in hidden]
        if [np.shape(x) for x in noise] != expected:
            raise ValueError(f"noise must have shapes {expected}, got {[np.shape(x) for x in noise]}")
        tables = {f"noise_raster_{l + 1}": self.table(f"noise_raster_{l + 1}", x, n)
                  for l, (x, n) in enumerate(zip(noise, hidden))}

        def variables(o: dict) -> dict:
            values = {}
            for branch in o["branches"]:
                first = branch["first_layer"]
                for pathway, layer, m in zip(branch["pathways"], branch["layers"], range(first, len(weights))):
                    values[pathway.w] = matrix_to_synapses(weights[m])
                    values[layer.bias] = np.asarray(biases[m], dtype=np.float64)
                values[branch["feedback"].feedback_weight] = np.asarray(feedback[first - 1], float).T.ravel()
            return values

        return RunValues(tables, variables)

    def run(self, weights, biases, feedback, noise: list[np.ndarray]) -> list[np.ndarray]:
        """One sleep phase from the given weights; returns the new feedback matrices B^l."""
        return self.read(self.simulate(self.run_values(weights, biases, feedback, noise)))

    def read(self, o: dict) -> list[np.ndarray]:
        n_out = self.settings.sizes[-1]
        return [np.asarray(branch["feedback"].feedback_weight[:]).reshape(n_out, -1).T.copy()
                for branch in o["branches"]]
