"""``apical compare``: frameworks side by side, one table and one figure.

    apical compare results/a results/b ...                       # finished results directories
    apical compare --frameworks all --out results/compare        # every registered framework's example
                                                                 # config, trained on a shared budget
    apical compare CONFIG.toml ... --out results/compare         # these configs, on the shared budget

A source is a results directory (it holds summary.json) or a config file. Configs are trained first,
each as a job of the sweep machinery (``apical.runs.sweep``: a child process per job, resumable,
``OUT/<name>/``), one after the other here, or on Dask with ``--workers K`` / ``--scheduler ADDR``.
The shared budget overrides every config alike: ``data.train_samples`` (``--train-samples``),
``data.test_samples`` (``--test-samples``), ``run.epochs`` (``--epochs``), no held-out validation,
one evaluation per epoch; ``--dataset`` trains every config on another dataset; ``--set`` adds
overrides of your own and replaces the budget's own for the same key (``--set run.eval_every=N``:
evaluations along the epoch, for learning curves). ``--set run.device=D`` applies to the frameworks
that offer D (``--set run.device=numpy``: the numpy forms where they exist, the other frameworks on
their config's device; the table names each row's device). Everything else (network, rates, batch
size, device) is each config's own.

Each results directory is then analysed (``apical analyze``, unless its analysis.json is newer than
its summary.json) and the comparison reads:

- summary.json: framework, network, dataset, final test accuracy, training ms/sample, compile
  seconds, and ``events`` (apical.analysis.events: synaptic events and energy per training sample);
- analysis.json: the ``claims`` entry, the shared vocabulary (docs/claims.md), each claim as
  ✓ (passes), ✗ (fails), "info" (measured, no criterion) or N/A (does not apply); a claim the
  framework's paper does not make is marked with an asterisk;
- runs/published.toml (or ``--published FILE``): the paper's number for the framework and
  dataset.

It writes ``OUT/compare.md`` (the table, the command and the budget), ``OUT/compare.csv`` (one row
per run, every number) and ``OUT/figures/accuracy_vs_energy`` (PNG and PDF): test accuracy against
energy per training sample, a marker per framework, filled for the neuromorphic estimate and open
for dense arithmetic, labelled with the claims it passes. ``--into FILE --section NAME`` puts the
table into a markdown file as ``apical report`` does.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from apical.analysis.report import CLAIMS
from apical.circuits import registry
from apical.runs.builds import HASH_SEED
from apical.runs.config import ConfigError, config_to_toml, load_config
from apical.runs.datasets import DATASETS as DATASET_KINDS
from apical.runs.report import put_into
from apical.runs.sweep import Job, SweepError, job_state

PUBLISHED = Path(__file__).resolve().parent / "published.toml"
#: The shared budget of `apical compare --frameworks all` (defaults of the flags).
TRAIN_SAMPLES, TEST_SAMPLES, EPOCHS = 2560, 1000, 1
CLAIM_TITLES = {"update_vs_backprop": "≈ backprop", "locality": "local", "event_based": "event-based",
                "weight_transport": "no weight transport", "feedback_alignment": "feedback aligns",
                "sign_concordance": "sign-concordant", "dale": "Dale"}
MARK = {"pass": "✓", "fail": "✗", "info": "info", "n/a": "N/A"}
DATASETS = {name: kind.title for name, kind in DATASET_KINDS.items()}  # their titles in the table


@dataclass
class Row:
    """One results directory, as the table shows it."""

    directory: Path
    summary: dict
    config: object
    analysis: dict = field(default_factory=dict)
    command: str = ""

    @property
    def framework(self) -> str:
        return self.summary.get("framework") or self.config.model.framework

    @property
    def title(self) -> str:
        spec = registry.get(self.framework) if self.framework in registry.names() else None
        return spec.run_title(self.config) if spec else self.framework

    @property
    def dataset(self) -> str:
        return self.config.data.dataset

    def events(self, phase: str = "training") -> dict | None:
        """Operations per sample of the trained network: analysis.json's count (made last), else summary.json's."""
        return (self.analysis.get("events") or self.summary.get("events") or {}).get(phase)

    def energy(self, kind: str) -> float | None:
        """nJ per training sample: "chip_nJ" (neuromorphic estimate) or "dense_nJ"."""
        counts = self.events()
        return None if counts is None else counts["energy"][kind]

    def claim(self, key: str) -> str:
        claims = self.analysis.get("claims", {})
        if key not in claims:
            return "—"
        entry = claims[key]
        mark = MARK[entry["verdict"]]
        return mark + ("*" if entry["verdict"] != "n/a" and not entry.get("claimed") else "")

    def passed(self) -> tuple[int, int]:
        """(claims it makes that pass, claims it makes that were checked)."""
        claimed = [c for c in self.analysis.get("claims", {}).values()
                   if c.get("claimed") and c["verdict"] in ("pass", "fail")]
        return sum(c["verdict"] == "pass" for c in claimed), len(claimed)


# ------------------------------------------------------------------------------------------ training
def budget_overrides(train_samples: int, test_samples: int, epochs: int, dataset: str | None) -> list[str]:
    """The overrides every config gets on the shared budget."""
    found = [f"data.train_samples={train_samples}", f"data.test_samples={test_samples}",
             "data.validation_samples=0", f"run.epochs={epochs}", "run.eval_every=0"]
    if dataset:
        found.append(f'data.dataset="{dataset}"')
    return found


def job_name(config_path: Path, taken: set[str]) -> str:
    name, k = config_path.stem, 1
    while name in taken:
        k += 1
        name = f"{config_path.stem}-{k}"
    taken.add(name)
    return name


def train_configs(configs: list[Path], overrides: list[str], out: Path, workers: int | None,
                  scheduler: str | None, stream=None) -> list[tuple[Path, str]]:
    """Train each config (with ``overrides``) as a job of the sweep machinery in ``out/<name>``;
    finished jobs are kept, unfinished ones resumed. Returns (results directory, command) per config."""
    stream = stream or sys.stderr
    taken: set[str] = set()
    jobs, applied = [], {}
    for path in configs:
        applied[path] = overrides_for(path, overrides)
        config = load_config(path, applied[path])
        jobs.append((Job(job_name(path, taken), (), 0, config), path))
    out.mkdir(parents=True, exist_ok=True)
    todo = [(job, path) for job, path in jobs if job_state(out, _plain(job)) != "finished"]
    print(f"compare {out}: {len(jobs)} configs, {len(jobs) - len(todo)} trained before, {len(todo)} to train",
          file=stream, flush=True)
    if todo and (workers or scheduler):
        _train_on_dask(todo, out, workers, scheduler, stream)
    else:
        for job, path in todo:
            _train_here(job, path, out, stream)
    return [(out / job.point, f"apical train {shown(path)} "
             + " ".join(f"--set '{o}'" for o in applied[path]) + f" --out {shown(out / job.point)}")
            for job, path in jobs]


def overrides_for(path: Path, overrides: list[str]) -> list[str]:
    """``overrides`` as they apply to one config: a ``run.device`` override is kept only where the
    config's framework offers that device (``--set run.device=numpy`` runs each framework's numpy
    form where it has one, the rest on their config's own device; the table's device column says
    which ran)."""
    devices = _framework_devices(path)
    return [o for o in overrides if not (o.split("=", 1)[0].strip() == "run.device"
                                         and o.split("=", 1)[1].strip().strip("'\"") not in devices)]


def _computed_on(name: str) -> str | None:
    """Where a framework's arithmetic runs whatever run.device says (FrameworkSpec.computes_on)."""
    return registry.get(name).computes_on if name in registry.names() else None


def _framework_devices(path: Path) -> tuple[str, ...]:
    name = load_config(path).model.framework
    return registry.get(name).devices if name in registry.names() else ()


def shown(path: Path) -> str:
    """A path as a command shows it: relative to the current folder where it lies inside it."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _plain(job: Job) -> Job:
    """A job whose directory is ``out/<name>`` (no seed folder): sweep's Job names it point/seed-s."""
    return _Flat(job.point, job.values, job.replicate, job.config)


class _Flat(Job):
    @property
    def name(self) -> str:
        return self.point


def _train_here(job: Job, path: Path, out: Path, stream) -> None:
    """One job in a child process, as a sweep's worker runs it (same generated code, its own build)."""
    directory = out / job.point
    directory.mkdir(parents=True, exist_ok=True)
    print(f"training {job.point} ({job.config.model.framework}) → {directory} (log: train.log)", file=stream, flush=True)
    with open(directory / "train.log", "ab") as log:
        child = subprocess.run([sys.executable, "-m", "apical.runs.sweep", str(directory), str(out / "builds" / "local"),
                                str(path)], input=config_to_toml(job.config).encode(), stdout=log, stderr=log,
                               env={**os.environ, "PYTHONHASHSEED": HASH_SEED})
    if child.returncode != 0:
        lines = (directory / "train.log").read_text(errors="replace").strip().splitlines()
        raise SweepError(f"training {job.point} failed (exit {child.returncode}): {lines[-1] if lines else 'no output'}")


def _train_on_dask(todo, out: Path, workers: int | None, scheduler: str | None, stream) -> None:
    from distributed import Client, LocalCluster, as_completed

    from apical.runs.sweep import run_job

    cluster = None if scheduler else LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                  dashboard_address=None)
    with Client(scheduler or cluster) as client:
        where = str(out.resolve())
        futures = {client.submit(run_job, where, job.point, config_to_toml(job.config), str(path),
                                 key=f"apical-compare-{where}/{job.point}", pure=False): job for job, path in todo}
        failed = []
        for future in as_completed(futures):
            job = futures[future]
            if future.status == "finished":
                result = future.result()
                print(f"{job.point}: test {100 * result['summary']['final_test_accuracy']:.2f} % in "
                      f"{result['seconds']:.0f} s", file=stream, flush=True)
            else:
                failed.append(job.point)
                print(f"{job.point} FAILED: {future.exception()}", file=stream, flush=True)
    if cluster is not None:
        cluster.close()
    if failed:
        raise SweepError(f"{len(failed)} trainings failed: {', '.join(failed)} (see their train.log; run the same "
                         "command again to retry them)")


# ------------------------------------------------------------------------------------------ reading
def read_row(directory: Path, analyze: bool = True, command: str = "", again: bool = False) -> Row:
    """A finished results directory, analysed first when its analysis is missing or older than its run
    (or ``again``)."""
    directory = Path(directory)
    if not (directory / "summary.json").exists():
        raise ConfigError(f"{directory} is neither a finished results directory (no summary.json) nor a config file")
    summary = json.loads((directory / "summary.json").read_text())
    config = load_config(directory / "config.toml")
    analysis_path = directory / "analysis.json"
    stale = not analysis_path.exists() or analysis_path.stat().st_mtime < (directory / "summary.json").stat().st_mtime
    if analyze and (stale or again):
        from apical.runs.analyze import analyze as run_analysis

        print(f"analysing {directory} ...", file=sys.stderr, flush=True)
        run_analysis(directory)
    analysis = json.loads(analysis_path.read_text()) if analysis_path.exists() else {}
    if not command:
        source = summary.get("config_file") or "CONFIG"
        command = f"apical train {source} --out {directory}"
    return Row(directory, summary, config, analysis, command)


def published(path: Path | None) -> dict:
    """The paper's numbers: runs/published.toml, then ``path`` over it."""
    with open(PUBLISHED, "rb") as handle:
        found = tomllib.load(handle)
    if path:
        try:
            with open(path, "rb") as handle:
                extra = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(f"--published {path}: cannot read it ({error})") from None
        for name, datasets in extra.items():
            found.setdefault(name, {}).update(datasets)
    return found


def paper_cell(papers: dict, row: Row) -> str:
    entry = papers.get(row.framework, {}).get(row.dataset)
    if not entry:
        return "—"
    if "accuracy" in entry:
        network = entry.get("network", "").split(" (")[0]
        return f"{entry['accuracy']:.2f}" + (f" ({network})" if network else "")
    return entry.get("text", "—")


# ------------------------------------------------------------------------------------------ the table
def _number(value, form: str) -> str:
    return "—" if value is None else format(value, form)


def _significant(value, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits without an exponent (1,310 rather than 1.31e+03)."""
    if value is None:
        return "—"
    if value == 0:
        return "0"
    places = digits - 1 - math.floor(math.log10(abs(value)))  # decimal places that keep `digits`
    return f"{round(value, places):,.{max(0, places)}f}"


def table(rows: list[Row], papers: dict) -> list[dict]:
    """One dict per row: every column of the markdown table and of the CSV."""
    found = []
    for row in rows:
        counts = row.events()
        timings = row.summary.get("timings", {})
        entry = {
            "framework": row.title,
            "framework_name": row.framework,
            "network": "-".join(map(str, row.summary.get("network", []))),
            "dataset": DATASETS.get(row.dataset, row.dataset),
            "train_samples": row.summary.get("samples_seen"),
            "test_accuracy": 100 * row.summary["final_test_accuracy"],
            "paper": paper_cell(papers, row),
            "train_ms_per_sample": timings.get("train_ms_per_sample"),
            "compile_seconds": timings.get("compile_seconds"),
            "device": _computed_on(row.framework) or row.summary.get("device"),
            "synaptic_events_per_training_sample": None if counts is None else counts["total_synaptic_events"],
            "chip_nJ_per_training_sample": row.energy("chip_nJ"),
            "dense_nJ_per_training_sample": row.energy("dense_nJ"),
            "dense_macs_per_training_sample": None if counts is None else counts["dense_macs"],
            "directory": str(row.directory),
            "command": row.command,
        }
        for key in CLAIMS:
            entry[key] = row.claim(key)
        found.append(entry)
    return found


def markdown(entries: list[dict], note: str) -> str:
    """The table, its legend and the command of every row."""
    claims = [CLAIM_TITLES[key] for key in CLAIMS]
    lines = [note, "",
             "| framework | network | dataset | test accuracy (%) | paper (%) | train ms/sample | compile s | "
             "synaptic events / training sample | energy / training sample: Loihi, dense (µJ) | "
             + " | ".join(claims) + " |",
             "|---|---|---|---:|---|---:|---:|---:|---:|" + "---|" * len(claims)]
    for e in entries:
        chip, dense = e["chip_nJ_per_training_sample"], e["dense_nJ_per_training_sample"]
        energy = (f"{_significant(None if chip is None else chip / 1e3)}, "
                  f"{_significant(None if dense is None else dense / 1e3)}")
        events = e["synaptic_events_per_training_sample"]
        cells = [e["framework"], e["network"], e["dataset"], f"{e['test_accuracy']:.2f}", e["paper"],
                 f"{_number(e['train_ms_per_sample'], '.2f')} ({e['device']})", _number(e["compile_seconds"], ".1f"),
                 _significant(None if events is None else events / 1e6) + ("" if events is None else " M"), energy,
                 *(e[key] for key in CLAIMS)]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    lines += ["", "✓ passes, ✗ fails, info: measured without a criterion, N/A: does not apply; * not claimed by the "
              "framework's paper (docs/claims.md). Energy: events priced at Intel Loihi's per-operation costs "
              "(Davies et al. 2018, IEEE Micro, Table 2) and the same learning as dense float32 multiply-accumulates "
              "(4.6 pJ each, Horowitz 2014); both leave out static power and memory traffic (docs/results.md, "
              "\"What a training sample costs\").", "", "Commands:", ""]
    lines += [f"- {e['framework']} ({e['dataset']}): `{e['command']}`" for e in entries]
    return "\n".join(lines) + "\n"


def write_csv(entries: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(entries[0]))
        writer.writeheader()
        for e in entries:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in e.items()})


# ------------------------------------------------------------------------------------------ the figure
def figure(rows: list[Row], path: Path, title: str = "") -> list[Path]:
    """Test accuracy against energy per training sample: per framework a filled marker at its
    neuromorphic estimate and an open one at dense arithmetic, joined; its legend entry says how
    many of the claims its paper makes pass. ``title`` names the budget."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    from apical.analysis.figures import STYLE, plt, save

    markers = "osD^vP*Xh"
    names = list(dict.fromkeys(row.framework for row in rows))
    with plt.rc_context({**STYLE, "figure.figsize": (4.6, 3.2)}):
        figure_, axes = plt.subplots()
        for k, row in enumerate(rows):
            style = {"marker": markers[names.index(row.framework) % len(markers)], "color": f"C{k % 10}",
                     "markersize": 6}
            accuracy = 100 * row.summary["final_test_accuracy"]
            chip, dense = row.energy("chip_nJ"), row.energy("dense_nJ")
            passed, claimed = row.passed()
            verdict = f"{passed} of its paper's {claimed} claims ✓" if claimed else "no plausibility claim"
            label = f"{row.title}, {DATASETS.get(row.dataset, row.dataset)}: {verdict}"
            points = [(e / 1e3, fill) for e, fill in ((chip, True), (dense, False)) if e is not None]
            if not points:
                continue
            if len(points) == 2:
                axes.plot([p[0] for p in points], [accuracy] * 2, "-", color=style["color"], lw=0.6, alpha=0.6)
            for x, fill in points:
                axes.plot([x], [accuracy], linestyle="none", markerfacecolor=style["color"] if fill else "white",
                          label=label if fill or len(points) == 1 else None, **style)
        axes.set_xscale("log")
        # Plain numbers at 1, 2 and 5 of each decade: a few decades at most, read without exponents.
        axes.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: _significant(value, 1)))
        axes.xaxis.set_minor_formatter(NullFormatter())
        axes.set_xlabel("energy per training sample (µJ, log scale)")
        if title:
            axes.set_title(title)
        axes.set_ylabel("test accuracy (%)")
        axes.grid(alpha=0.3, which="both")
        axes.plot([], [], "o", color="0.3", markersize=5, label="filled: Loihi estimate (Davies 2018)")
        axes.plot([], [], "o", color="0.3", markersize=5, markerfacecolor="white",
                  label="open: dense float32 MACs (Horowitz 2014)")
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False, fontsize=6)
        return save(figure_, path)


# ------------------------------------------------------------------------------------------ the command
def sources_of(args) -> tuple[list[Path], list[Path]]:
    """(results directories, config files) named on the command line or by --frameworks."""
    directories, configs = [], []
    for source in args.sources:
        path = Path(source)
        if path.is_dir():
            directories.append(path)
        elif path.suffix == ".toml" and path.exists():
            configs.append(path)
        else:
            raise ConfigError(f"{source}: neither a results directory nor a config file (.toml)")
    if args.frameworks:
        names = registry.names() if args.frameworks == "all" else [n.strip() for n in args.frameworks.split(",")]
        for name in names:
            spec = registry.get(name)
            if spec.example_config is None:
                raise ConfigError(f"--frameworks: {name} declares no example config; name a config instead")
            configs.append(Path(spec.example_config))
    if not directories and not configs:
        raise ConfigError("nothing to compare: name results directories or configs, or --frameworks all")
    if configs and not args.out:
        raise ConfigError("configs are trained first: give --out DIR for their results directories")
    return directories, configs


def compare(args) -> dict:
    directories, configs = sources_of(args)
    out = Path(args.out) if args.out else None
    # A key given with --set replaces the budget's own override of it (run.eval_every: evaluations
    # along the epoch for learning curves), so that each command lists every key once.
    given = {entry.split("=", 1)[0].strip() for entry in args.set}
    overrides = [entry for entry in budget_overrides(args.train_samples, args.test_samples, args.epochs, args.dataset)
                 if entry.split("=", 1)[0] not in given] + list(args.set)
    commands = {}
    if configs:
        for directory, command in train_configs(configs, overrides, out, args.workers, args.scheduler):
            commands[directory] = command
            directories.append(directory)
    rows = [read_row(d, analyze=not args.no_analyze, command=commands.get(d, ""), again=args.analyze_again)
            for d in directories]
    target = out or Path(".")
    (target / "figures").mkdir(parents=True, exist_ok=True)
    entries = table(rows, published(Path(args.published) if args.published else None))
    if configs:
        note = (f"Shared budget: {args.train_samples:,} training samples × {args.epochs} "
                f"epoch{'s' if args.epochs != 1 else ''}, tested on {args.test_samples:,} test samples, no validation "
                "hold-out; every other setting is the config's own. "
                "Made by `" + " ".join(["apical compare", *args.sources]
                                       + ([f"--frameworks {args.frameworks}"] if args.frameworks else []))
                + (f" --dataset {args.dataset}" if args.dataset else "")
                + (f" --train-samples {args.train_samples}" if args.train_samples != TRAIN_SAMPLES else "")
                + (f" --test-samples {args.test_samples}" if args.test_samples != TEST_SAMPLES else "")
                + (f" --epochs {args.epochs}" if args.epochs != EPOCHS else "")
                + "".join(f" --set '{s}'" for s in args.set) + f" --out {shown(out)}`.")
    else:
        note = f"Made by `apical compare {' '.join(args.sources)}` from finished results directories."
    text = markdown(entries, note)
    (target / "compare.md").write_text(text)
    write_csv(entries, target / "compare.csv")
    datasets = ", ".join(dict.fromkeys(DATASETS.get(row.dataset, row.dataset) for row in rows))
    budget = (f"{datasets}: {args.train_samples:,} training samples × {args.epochs} "
              f"epoch{'s' if args.epochs != 1 else ''}, "
              f"{args.test_samples:,} test samples") if configs else datasets
    figures = figure(rows, target / "figures" / "accuracy_vs_energy", budget)
    if args.into:
        put_into(Path(args.into), args.section or "compare", text)
    return {"rows": entries, "figures": figures, "table": target / "compare.md", "text": text}


def register(commands) -> None:
    """``apical compare``."""
    names = registry.names()
    parser = commands.add_parser("compare", help="frameworks side by side: one table (accuracy, paper, cost, events "
                                                 "and energy per training sample, claims) and one figure, from results "
                                                 "directories or from configs trained on a shared budget")
    parser.add_argument("sources", nargs="*", help="results directories and/or config files (.toml)")
    parser.add_argument("--frameworks", metavar="all|NAME,...", help="also the example config of these registered "
                        f"frameworks ({', '.join(names)}), trained on the shared budget")
    parser.add_argument("--out", help="where configs are trained (OUT/<config name>/) and the table and figure go "
                                      "(default for directories only: the current folder)")
    parser.add_argument("--train-samples", type=int, default=2560, help="shared budget: training samples per config "
                        "(default 2560, a multiple of every shipped batch size)")
    parser.add_argument("--test-samples", type=int, default=1000, help="shared budget: test samples (default 1000)")
    parser.add_argument("--epochs", type=int, default=1, help="shared budget: epochs (default 1)")
    parser.add_argument("--dataset", choices=list(DATASET_KINDS),
                        help="train every config on this dataset (default: each config's own)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of every config trained (repeatable)")
    parser.add_argument("--workers", type=int, help="train the configs on a local Dask cluster of this many workers")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="train the configs on this Dask scheduler")
    parser.add_argument("--no-analyze", action="store_true", help="read analysis.json as it is (claims: — where "
                                                                  "absent)")
    parser.add_argument("--analyze-again", action="store_true", help="analyse every results directory again, even "
                                                                      "where its analysis.json is newer than its run")
    parser.add_argument("--published", metavar="TOML", help="the papers' numbers of more frameworks (format of "
                                                            "runs/published.toml)")
    parser.add_argument("--into", metavar="MARKDOWN", help="also put the table into this file, e.g. docs/results.md")
    parser.add_argument("--section", help="with --into: the text between <!-- report:SECTION --> and "
                                          "<!-- /report:SECTION --> is replaced (default: compare)")
    parser.set_defaults(handler=main)


def main(args) -> int:
    if args.section and not args.into:
        raise ConfigError("--section names a part of the --into document; give --into too")
    if args.scheduler and args.workers:
        raise ConfigError("--workers sizes the local cluster; with --scheduler the cluster has its own workers")
    written = compare(args)
    print(written["text"])
    print(f"wrote {written['table']}, {written['table'].with_suffix('.csv')} and "
          f"{', '.join(map(str, written['figures']))}" + (f"; table put into {args.into}" if args.into else ""))
    return 0
