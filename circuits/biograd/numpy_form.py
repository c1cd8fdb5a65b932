"""BioGrad's wake phase as batched array code written for speed: the peer the Brian2 network
is measured against (docs/performance.md).

The algorithm is exactly that of :mod:`apical.circuits.biograd.oracle` (docs/models/biograd.md, "The discrete form"): the same soma,
pseudo-derivative g = γ·1[|v − θ| < w], reset factor ρ, per-synapse eligibility trace
ε[t] = λ·ρ_post[t-1]·ε[t-1] + s_pre[t], eligibility E += g·ε, error neurons, apical
compartments and wake update ΔW = −η·δ_post·E, averaged over a minibatch of M samples.
In float64 it equals the oracle to 1e-9 (tests/test_biograd_batched.py). What is optimised:

* **float32 by default** (``dtype``): half the memory traffic of float64 and twice the SIMD
  width; the dynamics are threshold tests on O(1) potentials, so single precision is ample.
* **In place, preallocated**: every per-step array (potentials, spikes, g, λρ, traces) lives in
  buffers allocated once per trainer and written with ``out=`` ufuncs; the time loop allocates
  only small index arrays.
* **Two passes per minibatch.** The soma dynamics do not depend on the eligibilities, so a
  first pass runs every layer and the error neurons for all T steps over the whole minibatch
  (one matrix product per layer and step, the batch as the BLAS "M" dimension) and stores
  s, g and λρ; a second pass computes the eligibilities from them. This changes nothing in
  the result and lets the second pass know which synapses can matter before it starts.
* **Only synapses that can contribute are touched.** A trace ε_ij stays 0 unless the
  presynaptic neuron j spikes in the sample, and a row i of ΔW is 0 unless δ_i ≠ 0 and
  g_i ≠ 0 at some step. The trace pass keeps only those columns and rows (for MNIST most
  pixels never spike: layer 1 keeps roughly a third of its 784 columns for a block of samples).
* **E accumulated only where g ≠ 0.** With the published rectangular g, g is 0 or γ, so
  E = γ·Σ_{t: g≠0} ε[t]: each step gathers the (sample, post) rows inside the window and adds
  their traces, instead of a dense multiply-add over every synapse; γ is applied once at the
  end. Another surrogate family (``params.surrogate``, models/surrogate.py) keeps g per step
  and adds g·ε on the rows where g ≠ 0 (every row for the exponential and fast-sigmoid ones).
* **Cache-sized blocks.** The trace tensor of the oracle is [M, n_post, n_pre] per layer (for
  784-500 and M = 128, 50 million numbers, 200 MB in float32, far beyond the caches). The trace
  pass walks the minibatch in blocks of ``block_size`` samples, so the live traces of a block
  (``block_size`` × kept rows × kept columns) stay in cache while they are swept T times. One
  sample per block is fastest here (MNIST, 2-core EPYC, 1 MB L2 per core): its own kept columns
  are fewer than a block's union, and 500 × ~150 float32 traces fit in L2; the matrix
  products of the soma pass still see the whole minibatch.

``eligibility="forward_every_input"`` is the same trace pass without the column skip (every
presynaptic neuron's traces are swept, silent or not): the peer exactly as docs/performance.md describes it
(float32, in place, E only where g ≠ 0), for the speed comparison.

``eligibility="kernel"`` offers an exact reordering of the same sums, for comparison. Unrolling
the trace recursion, E_ij = Σ_τ s_j[τ]·K_i[τ] with a per-neuron kernel
K_i[τ] = Σ_{t ≥ τ} g_i[t]·Π_{τ < u ≤ t} λρ_i[u-1], obtained backwards in time by
K_i[τ] = g_i[τ] + λρ_i[τ]·K_i[τ+1] (products only, no division: numerically as tame as the
forward recursion). The minibatch's weight change is then one matrix product per layer,
Σ_b δ_b·E_b = (δ ⊙ K)ᵀ·S over the (sample, step) axis. It is not an online rule (K needs the
whole sample, which the wake update waits for anyway), so it is not the peer the issue names;
it shows how cheap the arithmetic itself is, and it is the form an event-driven Brian2
implementation would compute (docs/performance.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from apical.circuits.biograd.oracle import DiscreteParameters

ELIGIBILITY_METHODS = ("forward", "forward_every_input", "kernel")


@dataclass
class WakeResult:
    """What one minibatch asks for: the weight change to add (already the minibatch mean)."""

    weight_change: list[np.ndarray]  # per layer, (post × pre)
    bias_change: list[np.ndarray]  # per layer, (post,)
    output_counts: np.ndarray  # [B, n_out] output spikes per sample
    apical_error: list[np.ndarray]  # per layer, [B, n] δ
    spikes: list[np.ndarray] | None = None  # per layer, [B, T, n] 0/1, when requested


class _ErrorSpikeSums:
    """The ± error neurons of a batch (no leak, threshold 1, subtractive reset) driven by the
    softmax error of the output counts so far; ``total`` sums their signed spikes Σ_t (s⁺ − s⁻)."""

    def __init__(self, batch: int, n_out: int):
        self.u_plus, self.u_minus = np.zeros((batch, n_out)), np.zeros((batch, n_out))
        self.s_plus, self.s_minus = np.zeros((batch, n_out)), np.zeros((batch, n_out))
        self.total = np.zeros((batch, n_out))

    def step(self, counts: np.ndarray, targets: np.ndarray) -> None:
        shifted = np.exp(counts - counts.max(axis=1, keepdims=True))
        error = shifted / shifted.sum(axis=1, keepdims=True) - targets
        self.u_plus += error - self.s_plus
        self.u_minus -= error + self.s_minus
        self.s_plus = (self.u_plus > 1.0).astype(np.float64)
        self.s_minus = (self.u_minus > 1.0).astype(np.float64)
        self.total += self.s_plus - self.s_minus


class BatchedBioGrad:
    """Minibatch BioGrad trainer (wake phase) in numpy.

    ``sizes`` = (n_in, hidden..., n_out); ``params`` the discrete constants (η included);
    ``batch_size`` M, the samples averaged into one weight update; ``dtype`` float32 (fast) or
    float64 (equal to the oracle). ``weights`` (post × pre), ``biases`` and ``feedback``
    (n_l × n_out, one per hidden layer) default to the initialisation of
    :func:`circuits.biograd.initial_state` with ``seed`` (random B). ``block_size`` samples share one
    block of the trace pass (forward method).
    """

    def __init__(
        self,
        sizes,
        params: DiscreteParameters,
        batch_size: int = 16,
        dtype=np.float32,
        *,
        weights=None,
        biases=None,
        feedback=None,
        seed: int = 0,
        eligibility: str = "forward",
        block_size: int = 1,
    ):
        self.sizes = tuple(int(n) for n in sizes)
        if len(self.sizes) < 2 or min(self.sizes) < 1:
            raise ValueError(f"sizes needs an input and an output size, all ≥ 1, got {sizes}")
        if batch_size < 1 or block_size < 1:
            raise ValueError(f"batch_size and block_size must be ≥ 1, got {batch_size}, {block_size}")
        if eligibility not in ELIGIBILITY_METHODS:
            raise ValueError(f"eligibility must be one of {ELIGIBILITY_METHODS}, got {eligibility!r}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        if not 0 <= params.error_start < params.time_steps:
            raise ValueError(f"error_start must lie in [0, time_steps), got {params.error_start}")
        self.params = params
        self.batch_size = int(batch_size)
        self.block_size = int(block_size)
        self.eligibility = eligibility
        # A non-rectangular g is not 0-or-γ: keep its values per step (see the module docstring).
        self._graded = params.surrogate != "rectangular"
        if weights is None:
            from apical.circuits.biograd.network import initial_state  # imports Brian2: only when asked to initialise

            state = initial_state(self.sizes, np.random.default_rng(seed), "random")
            weights, biases, feedback = state.weights, state.biases, state.feedback
        self.set_state(weights, biases, feedback)
        self._allocate()

    # ----------------------------------------------------------------- state
    def set_state(self, weights, biases, feedback):
        """Load W (post × pre), b and B (n_l × n_out), converted to this trainer's dtype."""
        shapes = list(zip(self.sizes[1:], self.sizes[:-1]))
        if [np.shape(w) for w in weights] != shapes or [np.shape(b) for b in biases] != [(n,) for n in self.sizes[1:]]:
            raise ValueError(f"weights must have shapes {shapes} and biases {self.sizes[1:]}")
        n_out = self.sizes[-1]
        if [np.shape(B) for B in feedback] != [(n, n_out) for n in self.sizes[1:-1]]:
            raise ValueError(f"feedback must be one (n_l × {n_out}) matrix per hidden layer")
        # W is stored transposed (pre × post) so that the forward product s_pre @ Wᵀ reads it row-major.
        self._weights_t = [np.ascontiguousarray(np.asarray(w, dtype=self.dtype).T) for w in weights]
        self.biases = [np.array(b, dtype=self.dtype) for b in biases]
        self._feedback_t = [np.ascontiguousarray(np.asarray(B, dtype=self.dtype).T) for B in feedback]

    @property
    def weights(self) -> list[np.ndarray]:
        """W (post × pre) as views of the stored arrays: writing into them moves this trainer's weights."""
        return [w.T for w in self._weights_t]

    @property
    def parameters(self) -> list[np.ndarray]:
        """The weights (post × pre) and then the biases, as views an optimizer steps in place
        (the ``step`` of :meth:`train_batch`); valid until the next :meth:`set_state`."""
        return [*self.weights, *self.biases]

    @property
    def feedback(self) -> list[np.ndarray]:
        return [B.T for B in self._feedback_t]

    def _allocate(self):
        T, M, dt = self.params.time_steps, self.batch_size, self.dtype
        posts = self.sizes[1:]
        self._input = np.zeros((T, M, self.sizes[0]), dtype=dt)
        # Per layer and step: spikes s, window indicator 1[g ≠ 0], survival λρ (applied to the next step).
        self._spikes = [np.zeros((T, M, n), dtype=dt) for n in posts]
        self._in_window = [np.zeros((T, M, n), dtype=bool) for n in posts]
        self._pseudo = [np.zeros((T, M, n), dtype=dt) for n in posts] if self._graded else None
        self._survival = [np.zeros((T, M, n), dtype=dt) for n in posts]
        self._potential = [np.zeros((M, n), dtype=dt) for n in posts]
        self._scratch = [np.zeros((M, n), dtype=dt) for n in posts]
        self._fired = [np.zeros((M, n), dtype=bool) for n in posts]
        self._bias_trace = [np.zeros((M, n), dtype=dt) for n in posts]
        self._bias_eligibility = [np.zeros((M, n), dtype=dt) for n in posts]
        self._weight_change = [np.zeros((n_post, n_pre), dtype=dt) for n_pre, n_post in zip(self.sizes, posts)]
        self._bias_change = [np.zeros(n, dtype=dt) for n in posts]
        # Trace pass: one flat buffer per layer for a block's traces and eligibilities, viewed at
        # the size each block needs (rows and columns kept), so it is allocated once.
        block = min(self.block_size, M)
        self._trace_memory = [np.zeros(block * n_post * n_pre, dtype=dt) for n_pre, n_post in zip(self.sizes, posts)]
        self._eligibility_memory = [np.zeros_like(m) for m in self._trace_memory]

    # ----------------------------------------------------------------- soma pass
    def _soma_pass(self, batch: int, targets: np.ndarray, learn: bool) -> tuple[np.ndarray, list[np.ndarray]]:
        """All layers and the error neurons over T steps for the first ``batch`` samples.

        Fills the per-step spikes, window indicators and survivals; returns the output counts
        and δ per layer.
        """
        p = self.params
        lam, theta, window, gamma = p.leak, p.threshold, p.window, p.gamma
        surrogate = p.pseudo_derivative
        T, t0 = p.time_steps, p.error_start
        L = len(self._weights_t)
        n_out = self.sizes[-1]
        potential = [v[:batch] for v in self._potential]
        scratch = [x[:batch] for x in self._scratch]
        fired = [f[:batch] for f in self._fired]
        bias_trace = [x[:batch] for x in self._bias_trace]
        bias_eligibility = [x[:batch] for x in self._bias_eligibility]
        for arrays in (potential, fired, bias_trace, bias_eligibility):
            for array in arrays:
                array.fill(0)
        counts = np.zeros((batch, n_out))
        errors = _ErrorSpikeSums(batch, n_out)
        forward_bias = learn and self.eligibility != "kernel"
        for t in range(T):
            presynaptic = self._input[t, :batch]
            for l in range(L):
                v, x, s_fired = potential[l], scratch[l], fired[l]
                in_window = self._in_window[l][t, :batch]
                survival = self._survival[l][t, :batch]
                spikes = self._spikes[l][t, :batch]
                # v = λ·v·(1 − s[t-1]) + W·s_pre + b
                np.multiply(v, lam, out=v)
                np.copyto(v, 0, where=s_fired)
                np.matmul(presynaptic, self._weights_t[l], out=x)
                v += x
                v += self.biases[l]
                np.greater(v, theta, out=s_fired)
                np.copyto(spikes, s_fired)
                if self._graded:
                    g = self._pseudo[l][t, :batch]
                    np.copyto(g, surrogate.numpy(v, theta))
                    np.not_equal(g, 0, out=in_window)
                    np.multiply(v, g, out=x)
                else:
                    # g = γ·1[|v − θ| < w]
                    np.subtract(v, theta, out=x)
                    np.abs(x, out=x)
                    np.less(x, window, out=in_window)
                    np.multiply(v, in_window, out=x)
                    if gamma != 1.0:
                        x *= gamma
                # λρ = λ·(1 − s − v·g), the survival of every trace into step t+1
                x += spikes
                np.subtract(1.0, x, out=survival)
                survival *= lam
                if forward_bias:
                    # ε^b = λρ[t-1]·ε^b + 1 (survival folded in below), E^b += g·ε^b
                    bt = bias_trace[l]
                    bt += 1.0
                    if self._graded:
                        bias_eligibility[l] += g * bt
                    else:
                        np.add(bias_eligibility[l], bt, out=bias_eligibility[l], where=in_window)
                    bt *= survival
                presynaptic = spikes
            counts += self._spikes[-1][t, :batch]
            if t >= t0:
                errors.step(counts, targets)
        # a_out = Σ_t (s⁺ − s⁻), a_l = B_l·Σ_t (s⁺ − s⁻);  δ = a / (T − t0)
        error_steps = T - t0
        deltas = [(errors.total @ B_t).astype(self.dtype) / error_steps for B_t in self._feedback_t]
        deltas.append((errors.total / error_steps).astype(self.dtype))
        return counts, deltas

    # ----------------------------------------------------------------- eligibility pass
    def _presynaptic(self, l: int, batch: int) -> np.ndarray:
        return self._input[:, :batch] if l == 0 else self._spikes[l - 1][:, :batch]

    def _forward_eligibility(self, l: int, batch: int, delta: np.ndarray):
        """Σ_b δ_b·E_b into the weight-change sum, traces run forward in time block by block."""
        T = self.params.time_steps
        presynaptic_all = self._presynaptic(l, batch)
        in_window_all = self._in_window[l][:, :batch]
        survival_all = self._survival[l][:, :batch]
        weight_change = self._weight_change[l]
        for b0 in range(0, batch, self.block_size):
            b1 = min(b0 + self.block_size, batch)
            presynaptic = presynaptic_all[:, b0:b1]
            in_window = in_window_all[:, b0:b1]
            block_delta = delta[b0:b1]
            # Rows that can change: δ ≠ 0 and g ≠ 0 at some step; columns: pre spiked at some step.
            rows = np.flatnonzero(((block_delta != 0) & in_window.any(axis=0)).any(axis=0))
            columns = (np.arange(presynaptic.shape[2]) if self.eligibility == "forward_every_input"
                       else np.flatnonzero(presynaptic.any(axis=(0, 1))))
            if rows.size == 0 or columns.size == 0:
                continue
            n_block, n_rows, n_columns = b1 - b0, rows.size, columns.size
            size = n_block * n_rows * n_columns
            trace = self._trace_memory[l][:size].reshape(n_block, n_rows, n_columns)
            eligibility = self._eligibility_memory[l][:size].reshape(n_block, n_rows, n_columns)
            trace.fill(0)
            eligibility.fill(0)
            trace_rows = trace.reshape(n_block * n_rows, n_columns)
            eligibility_rows = eligibility.reshape(n_block * n_rows, n_columns)
            spikes_kept = presynaptic[:, :, columns]  # [T, block, columns]
            window_kept = in_window[:, :, rows].reshape(T, n_block * n_rows)
            pseudo_kept = (self._pseudo[l][:, b0:b1][:, :, rows].reshape(T, n_block * n_rows)
                           if self._graded else None)
            survival_kept = survival_all[:, b0:b1][:, :, rows]  # [T, block, rows]
            for t in range(T):
                if t > 0:  # ε = λρ[t-1]·ε + s_pre[t]
                    np.multiply(trace, survival_kept[t - 1][:, :, None], out=trace)
                trace += spikes_kept[t][:, None, :]
                # E += g·ε only on the (sample, post) rows inside the window (γ applied below)
                active = np.flatnonzero(window_kept[t])
                if active.size:
                    if self._graded:
                        eligibility_rows[active] += pseudo_kept[t, active, None] * trace_rows[active]
                    else:
                        eligibility_rows[active] += trace_rows[active]
            # Σ_b δ_b,i·E_b,ij, one matrix product per kept row over the block's samples
            contribution = np.matmul(block_delta[:, rows].T[:, None, :], eligibility.transpose(1, 0, 2))[:, 0]
            weight_change[np.ix_(rows, columns)] += contribution

    def _kernel_eligibility(self, l: int, batch: int, delta: np.ndarray):
        """Σ_b δ_b·E_b = (δ ⊙ K)ᵀ·S with K[τ] = g[τ] + λρ[τ]·K[τ+1] (see module docstring)."""
        T, gamma = self.params.time_steps, self.params.gamma
        in_window = self._in_window[l][:, :batch]
        survival = self._survival[l][:, :batch]
        kernel = np.empty_like(survival)
        if self._graded:
            pseudo = self._pseudo[l][:, :batch]
            np.copyto(kernel[T - 1], pseudo[T - 1])
        else:
            np.multiply(in_window[T - 1], gamma, out=kernel[T - 1])
        for t in range(T - 2, -1, -1):
            np.multiply(survival[t], kernel[t + 1], out=kernel[t])
            kernel[t] += pseudo[t] if self._graded else in_window[t] * self.dtype.type(gamma)
        kernel *= delta[None]
        presynaptic = self._presynaptic(l, batch)
        flat_kernel = kernel.reshape(T * batch, -1)
        self._weight_change[l] += flat_kernel.T @ presynaptic.reshape(T * batch, -1)
        self._bias_change[l] += flat_kernel.sum(axis=0)

    # ----------------------------------------------------------------- public
    def _load_input(self, input_spikes) -> int:
        input_spikes = np.asarray(input_spikes)
        if input_spikes.ndim == 2:
            input_spikes = input_spikes[None]
        T, n_in = self.params.time_steps, self.sizes[0]
        shape_ok = input_spikes.ndim == 3 and input_spikes.shape[1:] == (T, n_in)
        if not shape_ok or not 1 <= len(input_spikes) <= self.batch_size:
            raise ValueError(f"input_spikes must have shape [B, {T}, {n_in}] with 1 ≤ B ≤ {self.batch_size}, "
                             f"got {input_spikes.shape}")
        batch = len(input_spikes)
        np.copyto(self._input[:, :batch], input_spikes.transpose(1, 0, 2))
        return batch

    def wake(self, input_spikes, labels, record_spikes: bool = False) -> WakeResult:
        """One minibatch's wake phase from the current weights, without applying it.

        ``weight_change`` is Σ_b ΔW_b / M with M = ``batch_size`` (also for a shorter batch,
        as :func:`apical.circuits.biograd.oracle.train_sequential` and the Brian2 network do). The
        weight and bias changes are this trainer's buffers, overwritten by the next call.
        """
        batch = self._load_input(input_spikes)
        labels = np.atleast_1d(np.asarray(labels, dtype=int))
        if labels.shape != (batch,) or labels.min() < 0 or labels.max() >= self.sizes[-1]:
            raise ValueError(f"labels must be {batch} integers in [0, {self.sizes[-1]})")
        targets = np.zeros((batch, self.sizes[-1]))
        targets[np.arange(batch), labels] = 1.0
        counts, deltas = self._soma_pass(batch, targets, learn=True)
        for l, delta in enumerate(deltas):
            self._weight_change[l].fill(0)
            self._bias_change[l].fill(0)
            if self.eligibility != "kernel":
                self._forward_eligibility(l, batch, delta)
                np.einsum("bi,bi->i", delta, self._bias_eligibility[l][:batch], out=self._bias_change[l])
                if not self._graded:  # γ of the rectangular g, applied once (module docstring)
                    self._weight_change[l] *= self.params.gamma
                    self._bias_change[l] *= self.params.gamma
            else:
                self._kernel_eligibility(l, batch, delta)
            scale = -self.params.learning_rate / self.batch_size
            self._weight_change[l] *= scale
            self._bias_change[l] *= scale
        spikes = [s[:, :batch].transpose(1, 0, 2).copy() for s in self._spikes] if record_spikes else None
        return WakeResult(self._weight_change, self._bias_change, counts, deltas, spikes)

    def train_batch(self, input_spikes, labels, step=None) -> np.ndarray:
        """Wake phase of one minibatch, then W += mean ΔW (or ``step(result)``, which moves the weights
        and biases itself: another optimizer); returns the output counts [B, n_out]."""
        result = self.wake(input_spikes, labels)
        if step is not None:
            step(result)
            return result.output_counts
        for w_t, b, dw, db in zip(self._weights_t, self.biases, result.weight_change, result.bias_change):
            w_t += dw.T
            b += db
        return result.output_counts

    def train(self, input_spikes, labels, step=None) -> np.ndarray:
        """Minibatches of ``batch_size`` in order (each moved by ``step``, see :meth:`train_batch`);
        returns the output counts of every sample."""
        counts = [self.train_batch(input_spikes[i : i + self.batch_size], labels[i : i + self.batch_size], step)
                  for i in range(0, len(labels), self.batch_size)]
        return np.concatenate(counts)

    def predict(self, input_spikes) -> np.ndarray:
        """Output spike counts [N, n_out] without learning (decode with argmax)."""
        input_spikes = np.asarray(input_spikes)
        counts = []
        no_target = np.zeros((self.batch_size, self.sizes[-1]))
        for i in range(0, len(input_spikes), self.batch_size):
            batch = self._load_input(input_spikes[i : i + self.batch_size])
            counts.append(self._soma_pass(batch, no_target[:batch], learn=False)[0])
        return np.concatenate(counts)


EVALUATION_BATCH = 500  # samples per forward pass without learning (bounds memory, not results)


class NumpyBioGradNetwork:
    """`BioGradNetwork`'s runs computed by :class:`BatchedBioGrad` with the exact kernel
    eligibility (``run.device = "numpy"`` of ``apical train``): samples in order, W and b moved by
    each minibatch's mean change — the same numbers as the Brian2 network (tests/test_biograd_batched.py
    holds the two to 1e-9 in float64 through apical train), about 4× faster here, for sweeps. The sleep phase on this
    device is :class:`NumpyBioGradSleep`."""

    compile_seconds = 0.0

    def __init__(self, settings, samples_per_run: int, precision: str = "float32", optimizer: str = "sgd"):
        if optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
        self.settings = settings
        self.samples_per_run = int(samples_per_run)
        self.dtype = np.float32 if precision == "float32" else np.float64
        self.optimizer = optimizer
        self._trainers = {}
        self.adam = None  # the Adam moments, per weight and bias, once training has begun

    def _parameter_names(self) -> list[str]:
        n_layers = len(self.settings.sizes) - 1
        return [f"weights_{l + 1}" for l in range(n_layers)] + [f"biases_{l + 1}" for l in range(n_layers)]

    def adam_arrays(self) -> dict[str, np.ndarray]:
        """Adam's state for a checkpoint, named as the BP baseline's: ``optimizer_steps`` and each
        weight's and bias's moments (``adam_m_weights_1``, ..., weights as post × pre)."""
        if self.adam is None:
            return {}
        return self.adam.state_arrays(self._parameter_names())

    def load_adam_arrays(self, arrays) -> None:
        """Restore what :meth:`adam_arrays` wrote (nothing there: Adam starts afresh)."""
        if "optimizer_steps" not in arrays:
            self.adam = None
            return
        self.adam = self._new_adam()
        self.adam.load_state_arrays(arrays, self._parameter_names(), self.dtype)

    def _new_adam(self):
        from apical.circuits.optimizers import Adam

        shapes = [(n_post, n_pre) for n_pre, n_post in zip(self.settings.sizes[:-1], self.settings.sizes[1:])]
        shapes += [(n_post,) for n_post in self.settings.sizes[1:]]
        return Adam([np.zeros(shape, dtype=self.dtype) for shape in shapes])

    def _trainer(self, batch_size: int, learning_rate: float, state) -> BatchedBioGrad:
        trainer = self._trainers.get(batch_size)
        params = self.settings.discrete(learning_rate)
        if trainer is None:
            trainer = BatchedBioGrad(self.settings.sizes, params, batch_size, self.dtype, weights=state.weights,
                                     biases=state.biases, feedback=state.feedback, eligibility="kernel")
            self._trainers[batch_size] = trainer
        else:
            trainer.params = params
            trainer.set_state(state.weights, state.biases, state.feedback)
        return trainer

    def run(self, state, input_spikes, labels, learning_rate: float, learn: bool = True):
        """Run ``samples_per_run`` samples from ``state``; ``learn=False`` only scores them."""
        from apical.circuits.biograd.network import BioGradState, RunResult  # imports Brian2: only when used

        input_spikes = np.asarray(input_spikes, dtype=self.dtype)
        labels = np.asarray(labels, dtype=int)
        if input_spikes.shape[0] != self.samples_per_run or labels.shape != (self.samples_per_run,):
            raise ValueError(f"this network runs {self.samples_per_run} samples at a time, got "
                             f"{input_spikes.shape[0]} inputs and {labels.shape} labels")
        if not learn:
            trainer = self._trainer(min(EVALUATION_BATCH, self.samples_per_run), 1.0, state)
            counts = trainer.predict(input_spikes)
            return RunResult(state=state, output_counts=counts)
        if self.optimizer == "adam":
            trainer, step = self._adam_trainer(state, learning_rate)
        else:
            trainer, step = self._trainer(self.settings.batch_size, learning_rate, state), None
        counts = trainer.train(input_spikes, labels, step)
        new = BioGradState([np.array(W, dtype=np.float64) for W in trainer.weights],
                           [np.array(b, dtype=np.float64) for b in trainer.biases],
                           [np.array(B, dtype=np.float64) for B in state.feedback])
        return RunResult(state=new, output_counts=counts)

    def _adam_trainer(self, state, step_size: float):
        """The trainer at η = 1 and the step that moves its weights and biases by Adam (Kingma & Ba
        2015) with step size ``step_size`` on each minibatch's mean update: the gradient estimate is
        −ΔW/η = mean δ·E. Each weight's step uses only its own update history (two running moments),
        so the rule stays local."""
        trainer = self._trainer(self.settings.batch_size, 1.0, state)
        if self.adam is None:
            self.adam = self._new_adam()
        self.adam.parameters = trainer.parameters  # views, stepped in place
        self.adam.lr = step_size
        return trainer, lambda result: self.adam.step([-dw for dw in result.weight_change]
                                                      + [-db for db in result.bias_change])


class NumpyBioGradSleep:
    """`BioGradSleepNetwork`'s sleep phase for ``run.device = "numpy"``: the same noise draw and
    :func:`apical.circuits.biograd.oracle.sleep_update`, the numpy oracle the Brian2 sleep network is
    tested against (tests/test_biograd_sleep.py)."""

    def __init__(self, settings, sleep):
        self.settings, self.sleep = settings, sleep

    def draw_noise(self, seed_rng: np.random.Generator) -> list[np.ndarray]:
        from apical.circuits.biograd.oracle import sleep_noise_per_layer

        return sleep_noise_per_layer(seed_rng, self.sleep, self.settings.sizes)

    def run(self, weights, biases, feedback, noise: list[np.ndarray]) -> list[np.ndarray]:
        from apical.circuits.biograd.oracle import sleep_update

        return sleep_update(weights, biases, feedback, noise, self.settings.discrete(0.0), self.sleep)
