"""What the frameworks' own benches share (``apical bench --framework NAME``, docs/performance.md):
:func:`bench_sizes` times a circuit at several depths, then a profiled build of the first, with the
timing helpers of :mod:`apical.analysis.timing` (BioLeaF's, the SC microcircuit's and e-prop's benches).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from apical.analysis.timing import build_root, machine, machine_load, write_report
from apical.circuits.framework import ConfigError

__all__ = ["SizesPlan", "bench_sizes"]


@dataclass(frozen=True)
class SizesPlan:
    """What a bench of one circuit at several depths times: the networks (the first is also
    profiled), their minibatch M, the default number of samples, T and the input seed."""

    networks: tuple[tuple[int, ...], ...]
    batch_size: int
    samples: int
    time_steps: int = 20
    input_seed: int = 0


def bench_sizes(title: str, time_network: Callable[..., dict], plan: SizesPlan, args) -> int:
    """Time ``time_network(sizes, rasters, labels, root, batch_size, device_name, runs=2, profile=False)``
    for each network of ``plan``, then a profiled build of the first (standalone devices only); print
    a row per network and where the binary's time goes; write $APICAL_BENCH_JSON.

    ``args``: ``device`` and ``samples`` (None: cpp, or runtime with ``dry_run``; the plan's count,
    rounded down to whole minibatches) and ``training_digits(samples, time_steps, seed)``.
    """
    device = args.device or ("runtime" if args.dry_run else "cpp")
    requested = int(args.samples or plan.samples)
    samples = requested - requested % plan.batch_size
    if samples < 1:
        raise ConfigError(f"--samples {requested} holds no whole minibatch of {plan.batch_size}")
    standalone = device != "runtime"
    report = {"title": title, "samples": samples, "device": device, "batch_size": plan.batch_size,
              "dry_run": bool(args.dry_run), "machine": machine()}
    report["load_before"] = report["machine"]["load_before"]
    where = {"cpp": "cpp_standalone", "cuda": "cuda_standalone"}.get(device, device)
    print(f"apical bench: {title}{' (dry run)' if args.dry_run else ''}, T = {plan.time_steps}, M = {plan.batch_size}, "
          f"float32, {where}, one thread, {samples} MNIST training samples; {report['load_before']}")
    rasters, labels = args.training_digits(samples, plan.time_steps, plan.input_seed)
    with build_root() as root:
        report["networks"] = [time_network(sizes, rasters, labels, root, plan.batch_size, device)
                              for sizes in plan.networks]
        for r in report["networks"]:
            binary = "" if r["binary_ms_per_sample"] is None else f" (binary {r['binary_ms_per_sample']:.2f})"
            print(f"{'-'.join(map(str, r['sizes'])):<18} compile {r['compile_seconds']:6.1f} s   "
                  f"{r['ms_per_sample']:6.2f} ms/sample{binary}   "
                  f"runs: {', '.join(f'{s:.2f} s' for s in r['run_seconds'])}")
        if standalone:
            profiled = time_network(plan.networks[0], rasters, labels, root / "profiled", plan.batch_size, device,
                                    runs=1, profile=True)
            report["profile"] = profiled
            total = sum(profiled["profile_ms_per_sample"].values())
            print(f"\nwhere the binary's time goes ({'-'.join(map(str, plan.networks[0]))}, profiled build, "
                  f"{total:.2f} ms/sample in code objects):")
            for label, ms in profiled["profile_ms_per_sample"].items():
                print(f"  {ms:6.2f} ms/sample  {100 * ms / total if total else 0.0:5.1f} %  {label}")
        else:
            print("(no profiled build: Brian2's per-code-object timers need a standalone device, --device cpp)")
    report["load_after"] = report["machine"]["load_after"] = machine_load()
    print(report["load_after"])
    write_report(report)
    return 0
