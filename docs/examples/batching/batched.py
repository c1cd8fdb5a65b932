"""B copies of a minimal plastic network in ONE Brian2 network, weights shared, reduced by Brian2 itself.

Network (per copy b): n_in afferents replaying a TimedArray raster (copy b reads columns b*n_in..),
n discrete-time LIF cells, an all-to-all plastic pathway whose weight W[j, i] (held pre-major,
k = j*n + i) is ONE array shared by every copy, a per-synapse eligibility E_b,ji += psi_b,i at each
spike of afferent (b, j) (psi a per-cell function of v: E does not factorise), a per-cell factor
delta_b,i = count/T - target, and at each sample boundary (the minibatch = the B copies' samples)
W_k += eta * sum_b delta_b,i * E_b,ji, E reset.

Variants (--variant):
  link2   forward pathway F (afferent -> cell) reads w through a linked variable (index widx) into
          a holder NeuronGroup (one neuron per weight); the eligibility lives in a reducer R
          (afferent (b, j) -> holder k) that reads psi and delta of cell (b, i) through linked
          variables (index cell) and sums delta*E into holder.dW ("(summed)"); the holder's
          run_regularly applies w += eta*dW.
  one     ONE pathway afferent (b, j) -> holder k: reads w_post, writes the cell's g through a linked
          variable (g_c += w_post, index cell), holds E, sums delta*E into holder.dW.
  plain   the unbatched baseline (B = 1): w and E in the pathway, updated by its run_regularly.
  linkE   F keeps E; reducer R (cell (b, i) -> holder k) links E to F's E (synapse -> synapse
          link, index sidx) and sums delta_pre*E.  FAILS: Brian2 links only to fixed-size variables.
  repl    F keeps its own copy of w (replicated B times); R as in link2; the new holder w is
          broadcast back into F's w through a linked variable W (F: w = W at the boundary).

Usage: python batched.py --device runtime|cpp|cuda --variant link2 --B 4 --n_in 20 --n 5 --T 20 --mb 3
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

ALPHA, TARGET, ETA, VTH = 0.9, 0.2, 0.05, 1.0


def data(B, n_in, n, T, mb, seed=1, rate=0.1):
    rng = np.random.default_rng(seed)
    steps = mb * T + 1
    raster = np.zeros((steps, B * n_in))
    raster[: mb * T] = rng.random((mb * T, B * n_in)) < rate
    w0 = rng.normal(0.6 / (rate * n_in), 1.0 / (rate * n_in), size=n_in * n)  # k = j*n + i
    return raster, w0


def reference(raster, w0, B, n_in, n, T, mb):
    """The same computation in numpy, float64, step by step."""
    w = w0.reshape(n_in, n).copy()
    v = np.zeros((B, n)); g = np.zeros((B, n)); psi = np.zeros((B, n)); count = np.zeros((B, n))
    E = np.zeros((B, n_in, n))
    steps = mb * T + 1
    total_spikes = 0
    for s in range(steps):
        if s % T == 0:
            delta = count / T - TARGET
            dW = np.einsum("bi,bji->ji", delta, E)
            w = w + ETA * dW
            E[:] = 0; count[:] = 0; v[:] = 0; g[:] = 0
        x = raster[s].reshape(B, n_in)
        v = ALPHA * v + g
        g = np.zeros((B, n))
        psi = 1.0 / (1.0 + (v - VTH) * (v - VTH))
        spk = v > VTH
        g += x @ w
        E += x[:, :, None] * psi[:, None, :]
        v[spk] = 0
        count[spk] += 1
        total_spikes += spk.sum()
    return w.ravel(), int(total_spikes)


def build(B, n_in, n, T, mb, variant, raster, w0, dt):
    from brian2 import NeuronGroup, Synapses, TimedArray, Network, linked_var, SpikeMonitor

    from apical.circuits.core import Schedule
    table = TimedArray(raster, dt=dt, name="raster")
    ns = dict(alpha=ALPHA, target=TARGET, eta=ETA, vth=VTH, T_steps=float(T), raster=table)
    sample = T * dt
    inputs = NeuronGroup(B * n_in, "spiked : 1", threshold="spiked > 0.5", reset="", namespace=ns, dt=dt,
                         name="inputs")
    read = inputs.run_regularly("spiked = raster(t, i)", when="groups", order=0, name="inputs_read")
    layer = NeuronGroup(B * n, "v : 1\ng : 1\npsi : 1\ncount : 1\ndelta : 1", threshold="v > vth",
                        reset="v = 0\ncount += 1", namespace=ns, dt=dt, name="layer")
    step = layer.run_regularly("v = alpha*v + g\ng = 0\npsi = 1.0/(1.0 + (v - vth)*(v - vth))",
                               when="groups", order=2, name="layer_step")
    # code objects of the groups placed in the step by rows of a schedule table (apical.circuits.core)
    placed = [("groups", 1, inputs.thresholder["spike"]), ("groups", 3, layer.thresholder["spike"])]
    # boundary, on the sample clock, in the start slot: delta, then the reduction, then apply, then reset
    bdelta = layer.run_regularly("delta = count/T_steps - target", dt=sample, when="start", order=0,
                                 name="layer_delta")
    breset = layer.run_regularly("count = 0\nv = 0\ng = 0", dt=sample, when="start", order=3, name="layer_reset")
    holder = NeuronGroup(n_in * n, "w : 1\ndW : 1", namespace=ns, dt=sample, name="holder")
    happly = holder.run_regularly("w += eta*dW", dt=sample, when="start", order=2, name="holder_apply")

    b = np.repeat(np.arange(B), n_in * n)
    j = np.tile(np.repeat(np.arange(n_in), n), B)
    i = np.tile(np.arange(n), B * n_in)
    pre, post, widx = b * n_in + j, b * n + i, j * n + i   # synapse s = b*n_in*n + j*n + i
    objs = [inputs, read, layer, step, bdelta, breset, holder, happly]
    def reducer(deliver: bool = False):
        """Eligibility per (copy, afferent, cell), held where the reduction is: afferent (b, j) -> weight
        k; with ``deliver`` the same synapse also reads w_post and writes the cell's g through a
        linked variable (g_c, index cell): then it is the only pathway ("one")."""
        delivery = "g_c : 1 (linked)\n" if deliver else ""
        R = Synapses(inputs, holder, "E : 1\ncell : integer (constant)\npsi_c : 1 (linked)\ndelta_c : 1 (linked)\n"
                     + delivery + "dW_post = delta_c*E : 1 (summed)",
                     on_pre=("g_c += w_post\n" if deliver else "") + "E += psi_c", namespace=ns, dt=dt, name="reducer")
        R.connect(i=pre, j=widx)
        R.cell = post
        R.psi_c = linked_var(layer, "psi", index="cell")
        R.delta_c = linked_var(layer, "delta", index="cell")
        if deliver:
            R.g_c = linked_var(layer, "g", index="cell")
        return R, R.run_regularly("E = 0", dt=sample, when="start", order=4, name="reducer_reset")

    if variant in ("link2", "repl"):
        # the forward pathway of every copy; link2 reads the holder's w, repl keeps its own copy of it
        linked = "w : 1 (linked)\n" if variant == "link2" else "w : 1\nW : 1 (linked)\n"
        F = Synapses(inputs, layer, linked + "widx : integer (constant)", on_pre="g_post += w",
                     namespace=ns, dt=dt, name="forward")
        F.connect(i=pre, j=post)
        F.widx = widx
        R, ereset = reducer()
        objs += [F, R, ereset]
        if variant == "link2":
            F.w = linked_var(holder, "w", index="widx")
        else:
            F.W = linked_var(holder, "w", index="widx")
            F.w = np.tile(w0, B)
            # broadcast the applied holder weight back into every copy's own w, after holder_apply (2)
            objs.append(F.run_regularly("w = W", dt=sample, when="start", order=3, name="forward_broadcast"))
    elif variant == "one":
        R, ereset = reducer(deliver=True)
        objs += [R, ereset]
    elif variant == "plain":
        # the unbatched baseline (B = 1): weights and eligibility in the pathway itself, as Apical has them now
        assert B == 1
        F = Synapses(inputs, layer, "w : 1\nE : 1", on_pre="g_post += w\nE += psi_post",
                     namespace=ns, dt=dt, name="forward")
        F.connect(i=pre, j=post)
        F.w = w0
        fapply = F.run_regularly("w += eta*delta_post*E\nE = 0", dt=sample, when="start", order=1,
                                 name="forward_apply")
        objs += [F, fapply]
        objs.remove(holder); objs.remove(happly)
        mon = SpikeMonitor(layer, name="layer_spikes")
        objs.append(mon)
        return Network(*objs), F, mon, table
    elif variant == "linkE":
        # fails on Brian2 2.10.1: a Synapses variable cannot be the target of a link
        F = Synapses(inputs, layer, "w : 1 (linked)\nwidx : integer (constant)\nE : 1",
                     on_pre="g_post += w\nE += psi_post", namespace=ns, dt=dt, name="forward")
        F.connect(i=pre, j=post)
        F.widx = widx
        F.w = linked_var(holder, "w", index="widx")
        R = Synapses(layer, holder, """Er : 1 (linked)
                     sidx : integer (constant)
                     dW_post = delta_pre*Er : 1 (summed)""", namespace=ns, dt=dt, name="reducer")
        R.connect(i=post, j=widx)
        R.sidx = np.arange(B * n_in * n)
        R.Er = linked_var(F, "E", index="sidx")
        objs += [F, R]
    else:
        raise ValueError(variant)
    placed.append(("start", 1, R.summed_updaters["dW_post"]))  # the reduction, after delta (0), before apply (2)
    Schedule(placed).apply({})
    holder.w = w0
    mon = SpikeMonitor(layer, name="layer_spikes")
    objs.append(mon)
    return Network(*objs), holder, mon, table


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="runtime")
    ap.add_argument("--variant", default="link2")
    ap.add_argument("--B", type=int, default=4)
    ap.add_argument("--n_in", type=int, default=20)
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--T", type=int, default=20)
    ap.add_argument("--mb", type=int, default=3)
    ap.add_argument("--runs", type=int, default=1, help="standalone: runs of the compiled binary (timing)")
    ap.add_argument("--no-ref", action="store_true")
    ap.add_argument("--build", default=None)
    a = ap.parse_args()
    import brian2
    from brian2 import prefs, set_device, device, ms
    prefs.core.default_float_dtype = np.float64
    brian2.seed(0)
    build_dir = a.build or str(Path(tempfile.gettempdir()) / "apical-batching" / f"{a.device}-{a.variant}-B{a.B}-{a.n_in}x{a.n}")
    if a.device == "runtime":
        prefs.codegen.target = "numpy"
    elif a.device == "cpp":
        prefs.devices.cpp_standalone.openmp_threads = 0
        set_device("cpp_standalone", directory=build_dir, build_on_run=False)
    elif a.device == "cuda":
        import brian2cuda  # noqa: F401
        be = prefs.devices.cuda_standalone.cuda_backend
        be.detect_gpus = False
        be.compute_capability = 9.0
        be.gpu_id = 0
        be.cuda_path = "/usr/local/cuda"
        be.extra_compile_args_nvcc = ["-w", "-use_fast_math", "-std=c++17"]
        prefs.codegen.cpp.extra_compile_args_gcc = [f for f in prefs.codegen.cpp.extra_compile_args_gcc
                                                    if not f.startswith("-std=")] + ["-std=c++17"]
        set_device("cuda_standalone", directory=build_dir, build_on_run=False)
    dt = 1 * ms
    raster, w0 = data(a.B, a.n_in, a.n, a.T, a.mb)
    net, holder, mon, table = build(a.B, a.n_in, a.n, a.T, a.mb, a.variant, raster, w0, dt)
    if a.device == "cuda":
        from brian2 import NeuronGroup, defaultclock
        defaultclock.dt = dt
        net.add(NeuronGroup(1, "", name="defaultclock_anchor"))
    t0 = time.time()
    net.run((a.mb * a.T + 1) * dt, namespace={})
    out = {"device": a.device, "variant": a.variant, "B": a.B, "n_in": a.n_in, "n": a.n, "T": a.T, "mb": a.mb}
    if a.device == "cuda":
        device.build(directory=build_dir, compile=False, run=False)
        cu = sorted(p.name for p in Path(build_dir, "code_objects").glob("*.cu"))
        out["generated"] = cu
        print(json.dumps(out))
        return
    if a.device == "cpp":
        device.build(directory=build_dir, compile=True, run=False, with_output=False)
        out["compile_s"] = time.time() - t0
        times, walls = [], []
        for _ in range(a.runs):
            t1 = time.time()
            device.run(directory=build_dir, with_output=False, run_args={holder.w: w0, table: raster})
            walls.append(time.time() - t1)
            times.append(device._last_run_time)
        out["run_s"] = times
        out["wall_s"] = walls
        out["per_sample_ms"] = 1e3 * min(times) / (a.B * a.mb)
    else:
        out["run_s"] = time.time() - t0
    w = np.asarray(holder.w[:])
    out["spikes"] = int(len(mon.i[:]))
    if not a.no_ref:
        wr, spikes_ref = reference(raster, w0, a.B, a.n_in, a.n, a.T, a.mb)
        out["spikes_ref"] = spikes_ref
        out["max_abs_diff"] = float(np.max(np.abs(w - wr)))
        out["max_abs_update"] = float(np.max(np.abs(wr - w0)))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
