"""Tables and figures across the jobs of a sweep (``apical report DIR``).

Every number of a paper is a mean ± s.d. over seeds: the table has one row per grid point, with
the final test accuracy, the final angle of each feedback matrix to its forward pathway and the
training throughput, each as mean ± s.d. over the seed replicates that finished (s.d. with
n − 1; a single seed shows no s.d.). Written as DIR/report.csv (numbers), DIR/report.md (the
table), DIR/report-jobs.csv (one row per job) and DIR/figures/: accuracy against each grid key
with error bars, and learning (and alignment) curves of every grid point overlaid.

``--into docs/results.md --section NAME`` puts the markdown between ``<!-- report:NAME -->`` and
``<!-- /report:NAME -->`` in that file, so the tables of the docs come from this command.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from apical.runs.sweep import SPEC_FILE, SweepError, grid_points, value_label


@dataclass
class JobResult:
    """What a report needs of one job; ``summary`` is None until the job has finished."""

    name: str
    point: str
    labels: dict[str, str]  # grid key → value as shown
    replicate: int
    summary: dict | None = None
    metrics: list[dict] = field(default_factory=list)

    @property
    def values(self) -> dict[str, float]:
        """The quantities tabled for a finished job."""
        values = {"test_accuracy": 100 * self.summary["final_test_accuracy"]}
        for key, value in (self.metrics[-1] if self.metrics else {}).items():
            if key.startswith("alignment_angle_") and value != "":
                values[key] = float(value)
        train_seconds = self.summary["timings"]["train_seconds"]
        values["samples_per_second"] = self.summary["samples_seen"] / train_seconds if train_seconds else math.nan
        return values


COLUMN_TITLES = {"test_accuracy": "test accuracy (%)", "samples_per_second": "training samples/s"}
DIGITS = {"test_accuracy": 2, "samples_per_second": 0}  # alignment angles: 1


def superscript(digits: str) -> str:
    return digits.translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))


def column_title(quantity: str) -> str:
    if quantity.startswith("alignment_angle_"):
        return f"angle B{superscript(quantity.rsplit('_', 1)[1])} to forward (°)"
    return COLUMN_TITLES[quantity]


def load_sweep(directory) -> tuple[dict, list[JobResult]]:
    """The sweep's spec (sweep.json) and every job it names, finished or not."""
    directory = Path(directory)
    if not (directory / SPEC_FILE).exists():
        raise SweepError(f"{directory} is not a sweep directory (no {SPEC_FILE}; make one with apical sweep)")
    spec = json.loads((directory / SPEC_FILE).read_text())
    jobs = []
    for replicate in range(spec["seeds"]):
        for point, values in grid_points(spec["grid"]):
            job = JobResult(f"{point}/seed-{replicate}", point, {k: value_label(v) for k, v in values}, replicate)
            path = directory / job.name
            if (path / "summary.json").exists():
                job.summary = json.loads((path / "summary.json").read_text())
            if (path / "metrics.csv").exists():
                with open(path / "metrics.csv", newline="") as handle:
                    job.metrics = list(csv.DictReader(handle))
            jobs.append(job)
    return spec, jobs


def summarise(spec: dict, jobs: list[JobResult]) -> tuple[list[str], list[dict]]:
    """The tabled quantities and one row per grid point: labels, seeds finished and, per
    quantity, mean and s.d. over the finished seeds."""
    finished = [job for job in jobs if job.summary is not None]
    quantities = ["test_accuracy"]
    quantities += sorted({k for job in finished for k in job.values if k.startswith("alignment_angle_")})
    quantities += ["samples_per_second"]
    rows = []
    for point, _ in grid_points(spec["grid"]):
        members = [job for job in finished if job.point == point]
        row = {"point": point, "labels": next(j.labels for j in jobs if j.point == point),
               "finished": len(members), "seeds": spec["seeds"]}
        for quantity in quantities:
            samples = np.array([job.values.get(quantity, math.nan) for job in members], float)
            samples = samples[np.isfinite(samples)]
            row[quantity] = (samples.mean() if samples.size else math.nan,
                             samples.std(ddof=1) if samples.size > 1 else math.nan)
        rows.append(row)
    return quantities, rows


def _shown(mean: float, sd: float, digits: int) -> str:
    if math.isnan(mean):
        return "—"
    return f"{mean:.{digits}f}" + ("" if math.isnan(sd) else f" ± {sd:.{digits}f}")


def markdown_table(spec: dict, quantities: list[str], rows: list[dict], directory) -> str:
    keys = list(spec["grid"])
    sets = "".join(f" --set {s}" for s in spec["set"])
    grid = "; ".join(f"{key} ∈ {{{', '.join(value_label(v) for v in values)}}}" for key, values in spec["grid"].items())
    lines = [
        f"Sweep of `{spec['config_file']}{sets}`: {grid or 'no grid'}; {spec['seeds']} seed replicates "
        f"({spec['seed_rule']}). Mean ± s.d. over the seeds that finished, final values of each job. "
        f"Made by `apical report {directory}`.",
        "",
        "| " + " | ".join([*keys, "seeds", *map(column_title, quantities)]) + " |",
        "|" + "---|" * len(keys) + "---:|" * (1 + len(quantities)),
    ]
    for row in rows:
        seeds = f"{row['finished']}" if row["finished"] == row["seeds"] else f"{row['finished']}/{row['seeds']}"
        cells = [row["labels"][key] for key in keys] + [seeds]
        cells += [_shown(*row[q], DIGITS.get(q, 1)) for q in quantities]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_tables(directory: Path, spec: dict, jobs: list[JobResult], quantities: list[str], rows: list[dict]):
    keys = list(spec["grid"])
    with open(directory / "report.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*keys, "seeds_finished", "seeds", *(f"{q}_{s}" for q in quantities for s in ("mean", "sd"))])
        for row in rows:
            writer.writerow([*(row["labels"][k] for k in keys), row["finished"], row["seeds"],
                             *(f"{v:.6g}" for q in quantities for v in row[q])])
    with open(directory / "report-jobs.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["job", *keys, "replicate", "finished", *quantities])
        for job in jobs:
            values = job.values if job.summary else {}
            writer.writerow([job.name, *(job.labels[k] for k in keys), job.replicate, int(job.summary is not None),
                             *(f"{values[q]:.6g}" if q in values else "" for q in quantities)])
    (directory / "report.md").write_text(markdown_table(spec, quantities, rows, directory))


# ------------------------------------------------------------------------------------------
# figures


def _number(label: str) -> float | None:
    try:
        return float(label) if label not in ("true", "false") else None
    except ValueError:
        return None


def _short(key: str) -> str:
    return key.split(".", 1)[-1]


def _point_label(labels: dict[str, str], keys: list[str]) -> str:
    return ", ".join(f"{_short(k)}={labels[k]}" for k in keys) or "base"


def accuracy_against(key: str, spec: dict, jobs: list[JobResult], rows: list[dict], path: Path):
    """Final test accuracy against the values of ``key``: mean ± s.d. over seeds (error bars)
    and each seed (dots), one line per combination of the other keys."""
    from apical.analysis.figures import STYLE, plt, save

    values = [value_label(v) for v in spec["grid"][key]]
    numbers = [_number(v) for v in values]
    numeric = all(n is not None for n in numbers)
    position = dict(zip(values, numbers if numeric else range(len(values))))
    others = [k for k in spec["grid"] if k != key]
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots()
        combinations = list(dict.fromkeys(tuple(r["labels"][k] for k in others) for r in rows))
        n_lines = len(combinations)
        for line, rest in enumerate(combinations):
            members = [r for r in rows if tuple(r["labels"][k] for k in others) == rest and r["finished"]]
            if not members:
                continue
            # Lines side by side on a categorical axis, so that their error bars do not hide each other.
            dodge = 0.0 if numeric else 0.08 * (line - (n_lines - 1) / 2)
            x = [position[r["labels"][key]] + dodge for r in members]
            mean = [r["test_accuracy"][0] for r in members]
            sd = [0.0 if math.isnan(r["test_accuracy"][1]) else r["test_accuracy"][1] for r in members]
            label = _point_label(dict(zip(others, rest)), others) if others else "mean ± s.d. over seeds"
            # A line joins numeric values only: between categories it would suggest an order.
            bars = axes.errorbar(x, mean, yerr=sd, fmt="o-" if numeric else "o", capsize=3, label=label)
            beside = 0.0 if numeric else 0.06  # each seed as an open circle beside its error bar
            seeds = [(position[j.labels[key]] + dodge + beside, j.values["test_accuracy"]) for j in jobs
                     if j.summary and tuple(j.labels[k] for k in others) == rest]
            axes.plot(*zip(*seeds), "o", color=bars[0].get_color(), markerfacecolor="none", alpha=0.7,
                      markersize=3.5, markeredgewidth=0.7)
        if numeric:
            if min(numbers) > 0 and max(numbers) / min(numbers) >= 20:
                axes.set_xscale("log")
        else:
            axes.set_xticks(range(len(values)), values)
            axes.set_xlim(-0.5, len(values) - 0.5)
        axes.set_xlabel(key)
        axes.set_ylabel("final test accuracy (%)")
        axes.grid(alpha=0.3)
        axes.legend(loc="best")
        axes.set_title(f"test accuracy against {_short(key)} (circles: seeds)")
        return save(figure, path)


def initial_point(job: JobResult, column: str, scale: float) -> dict[int, float]:
    """The evaluation before training (summary.json's ``initial_test_accuracy``) as the point at 0
    samples of a test-accuracy curve; none for other columns or runs made before it existed."""
    initial = (job.summary or {}).get("initial_test_accuracy")
    if column != "test_accuracy" or initial is None:
        return {}
    return {0: scale * float(initial)}


def curves_overlaid(column: str, ylabel: str, spec: dict, jobs: list[JobResult], path: Path, title: str):
    """``column`` of metrics.csv against samples seen, one colour per grid point: each seed
    (thin; unfinished jobs too, as far as they got) and at each evaluation the mean over the
    seeds that reached it (line)."""
    from apical.analysis.figures import STYLE, finish_training_axes, plt

    keys = list(spec["grid"])
    scale = 100.0 if column.endswith("accuracy") else 1.0
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots()
        for point, _ in grid_points(spec["grid"]):
            members = [j for j in jobs if j.point == point and j.metrics and column in j.metrics[0]]
            if not members:
                continue
            curves = [{**initial_point(j, column, scale), **{int(r["samples_seen"]): scale * float(r[column])
                                                             for r in j.metrics}} for j in members]
            seen = sorted(set().union(*curves))
            mean = [np.mean([curve[n] for curve in curves if n in curve]) for n in seen]
            line, = axes.plot(seen, mean, "o-", label=f"{_point_label(members[0].labels, keys)} (n={len(members)})")
            for curve in curves:
                axes.plot(list(curve), list(curve.values()), "-", color=line.get_color(), alpha=0.3, linewidth=0.6)
        axes.set_ylabel(ylabel)
        return finish_training_axes(figure, axes, path, title, legend_below=True)


def write_figures(directory: Path, spec: dict, jobs: list[JobResult], rows: list[dict]) -> list[Path]:
    figures = directory / "figures"
    figures.mkdir(exist_ok=True)
    written = []
    for key in spec["grid"]:  # ".png" kept on, so that the dot of section.key is no suffix to save()
        written += accuracy_against(key, spec, jobs, rows, figures / f"accuracy_vs_{key}.png")
    written += curves_overlaid("test_accuracy", "test accuracy (%)", spec, jobs, figures / "learning_curves",
                               "learning curves (thin: seeds)")
    layers = sorted({k for j in jobs for k in (j.metrics[0] if j.metrics else {}) if k.startswith("alignment_angle_")})
    for column in layers:
        layer = column.rsplit("_", 1)[1]
        written += curves_overlaid(column, f"angle of B$^{{{layer}}}$ to forward pathway (°)", spec, jobs,
                                   figures / f"alignment_curves_{layer}", f"feedback alignment, hidden layer {layer}")
    return written


# ------------------------------------------------------------------------------------------
# into a markdown document


def put_into(document: Path, section: str, text: str) -> None:
    """Replace the text between the section's markers in ``document`` (or append the block)."""
    begin, end = f"<!-- report:{section} -->", f"<!-- /report:{section} -->"
    block = f"{begin}\n{text.rstrip()}\n{end}"
    source = document.read_text() if document.exists() else ""
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(source):
        source = pattern.sub(lambda _: block, source, count=1)
    else:
        source = source.rstrip("\n") + ("\n\n" if source else "") + block + "\n"
    document.write_text(source)


def report(directory, into=None, section: str | None = None) -> dict:
    """Write the tables and figures of a sweep; returns what was written."""
    directory = Path(directory)
    spec, jobs = load_sweep(directory)
    quantities, rows = summarise(spec, jobs)
    write_tables(directory, spec, jobs, quantities, rows)
    finished = sum(job.summary is not None for job in jobs)
    figures = write_figures(directory, spec, jobs, rows) if finished else []
    if into:
        put_into(Path(into), section or directory.name, (directory / "report.md").read_text())
    return {"jobs": len(jobs), "finished": finished, "figures": figures,
            "tables": [directory / "report.md", directory / "report.csv", directory / "report-jobs.csv"]}


def register(commands) -> None:
    """``apical report``."""
    parser = commands.add_parser("report", help="tables (mean ± s.d. over seeds) and figures across a sweep's jobs")
    parser.add_argument("directory", help="a sweep directory (apical sweep --out)")
    parser.add_argument("--into", metavar="MARKDOWN", help="also put the table into this file, e.g. docs/results.md")
    parser.add_argument("--section", help="with --into: the text between <!-- report:SECTION --> and "
                        "<!-- /report:SECTION --> is replaced, or the block appended (default: the directory's name)")
    parser.set_defaults(handler=main)


def main(args) -> int:
    """``apical report``."""
    if args.section and not args.into:
        raise SweepError("--section names a part of the --into document; give --into too")
    written = report(args.directory, args.into, args.section)
    print((Path(args.directory) / "report.md").read_text())
    print(f"{written['finished']}/{written['jobs']} jobs finished; tables: "
          f"{', '.join(map(str, written['tables']))}; {len(written['figures'])} figure files in "
          f"{Path(args.directory) / 'figures'}" + (f"; table put into {args.into}" if args.into else ""))
    return 0
