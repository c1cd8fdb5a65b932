"""A results directory's files (README, "Training"): checkpoints, metrics.csv, and the lock that
keeps a second run out.

Every checkpoint is written whole (runs/files.py) with the resolved config and a SHA-256 of its
arrays in its progress record; the two newest are kept, and a damaged one is named and skipped
for the newest good one. metrics.csv gets one row per evaluation, each flushed to disk.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sys
from pathlib import Path

import numpy as np

from apical.runs.errors import CheckpointError, TrainingError
from apical.runs.files import hold_pid_lock, release_lock, write_atomically


def checkpoint_name(samples_seen: int) -> str:
    return f"checkpoint-{samples_seen:010d}.npz"


def state_digest(arrays: dict) -> str:
    """SHA-256 of named arrays (names, dtypes, shapes and bytes), to recognise a damaged checkpoint."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def read_checkpoint(path: Path) -> tuple[dict, dict]:
    """A checkpoint's state (named arrays) and progress, verified: a truncated or damaged file, or one
    whose arrays no longer match the digest written with them, raises CheckpointError naming it."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as stored:
            state = {name: stored[name] for name in stored.files if name != "progress"}
            progress = json.loads(str(stored["progress"])) if "progress" in stored.files else {}
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except Exception as error:  # zipfile.BadZipFile, EOFError, ValueError, OSError, a CRC error...
        raise CheckpointError(f"checkpoint {path} is damaged or not a checkpoint "
                              f"({type(error).__name__}: {error})") from None
    expected = progress.get("state_digest")
    if expected is not None and expected != state_digest(state):
        raise CheckpointError(f"checkpoint {path} is damaged (its arrays do not match the digest written with them)")
    return state, progress


def newest_good_checkpoint(folder: Path, log=None) -> tuple[Path, dict, dict] | None:
    """The newest checkpoint in ``folder`` that reads back whole and matches its digest, with its
    state and progress; damaged newer ones are named on ``log`` and skipped (None: there is none)."""
    damaged = 0
    for path in sorted(Path(folder).glob("checkpoint-*.npz"), reverse=True):
        try:
            state, progress = read_checkpoint(path)
        except CheckpointError as error:
            if path.exists():  # else rotated away by a training beside us since the listing
                damaged += 1
                print(f"skipping {error}", file=log or sys.stderr, flush=True)
            continue
        return path, state, progress
    if damaged:
        raise TrainingError(f"no checkpoint in {folder} can be read ({damaged} damaged); "
                            "start afresh in another --out")
    return None


def find_checkpoint(directory: Path, checkpoint: str, purpose: str) -> Path:
    """A results directory's checkpoint file: "latest" (the newest periodic one), "selected" (the
    one chosen on validation) or a file's path; ``purpose`` words the error."""
    if checkpoint == "latest":
        checkpoints = sorted((directory / "checkpoints").glob("checkpoint-*.npz"))
        if not checkpoints:
            raise TrainingError(f"{directory} holds no checkpoint to {purpose}")
        return checkpoints[-1]
    path = directory / "checkpoints" / "selected.npz" if checkpoint == "selected" else Path(checkpoint)
    if not path.exists():
        raise TrainingError(f"no checkpoint {path} to {purpose}"
                            + (" (the run holds out no validation samples)" if checkpoint == "selected" else ""))
    return path


def load_checkpoint(directory: Path, checkpoint: str, purpose: str, log=None) -> tuple[Path, dict, dict]:
    """The checkpoint ``find_checkpoint`` names, read and verified, with its state and progress. For
    "latest", a checkpoint that a training beside us rotates away is replaced by the next newest, and
    a damaged one is named and skipped for the newest good one; a file the caller named must be good."""
    directory = Path(directory)
    if checkpoint != "latest":
        path = find_checkpoint(directory, checkpoint, purpose)
        return (path, *read_checkpoint(path))
    for _ in range(5):  # a training may rotate every listed checkpoint away while we read
        find_checkpoint(directory, checkpoint, purpose)  # one line when there is none at all
        found = newest_good_checkpoint(directory / "checkpoints", log)
        if found is not None:
            return found
    raise TrainingError(f"the checkpoints of {directory} keep changing under us; try again")


def read_metrics(directory: Path) -> list[dict]:
    """The rows of a results directory's metrics.csv (none when it has none yet)."""
    path = Path(directory) / "metrics.csv"
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def selected_row(metrics: list[dict]) -> dict | None:
    """Model selection on held-out training samples: the first evaluation with the highest
    validation accuracy (None when the run holds out none). Its test accuracy is the honest
    figure to report, since the test set took no part in choosing it."""
    rows = [r for r in metrics if r.get("validation_accuracy") not in (None, "")]
    return max(rows, key=lambda r: float(r["validation_accuracy"])) if rows else None


class ResultsDirectory:
    """Files of one run; holds an exclusive lock for as long as the run lives."""

    def __init__(self, path: Path, resume: bool):
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.figures = self.path / "figures"
        existing = (self.path / "metrics.csv").exists() or any(self.checkpoints.glob("*.npz"))
        if existing and not resume:
            raise TrainingError(f"results directory {self.path} already holds a run; pass --resume or choose another --out")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self.checkpoints.mkdir(exist_ok=True)
            self.figures.mkdir(exist_ok=True)
            self._lock = hold_pid_lock(self.path / ".lock", f"results directory {self.path}")
        except OSError as error:
            raise TrainingError(f"cannot write into the results directory {self.path} "
                                f"({error.strerror or error}); choose another --out") from None

    def release(self):
        release_lock(self._lock)

    def newest_good_checkpoint(self, log=None) -> tuple[Path, dict, dict] | None:
        return newest_good_checkpoint(self.checkpoints, log)

    def save_checkpoint(self, arrays: dict, progress: dict, config_text: str | None = None) -> Path:
        """Write a checkpoint whole (temporary file, fsync, rename) with the resolved config and a
        digest of its arrays in its progress record; keep the two newest."""
        path = self.checkpoints / checkpoint_name(progress["samples_seen"])
        record = {**progress, "state_digest": state_digest(arrays)}
        if config_text is not None:
            record["config"] = config_text
        write_atomically(path, lambda handle: np.savez(handle, progress=json.dumps(record), **arrays))
        for old in sorted(self.checkpoints.glob("checkpoint-*.npz"))[:-2]:
            old.unlink()
        return path

    def save_selected(self, arrays: dict, samples_seen: int) -> Path:
        """The weights of the evaluation with the best validation accuracy (selected.npz)."""
        path = self.checkpoints / "selected.npz"
        record = {"samples_seen": samples_seen, "state_digest": state_digest(arrays)}
        write_atomically(path, lambda handle: np.savez(handle, progress=json.dumps(record), **arrays))
        return path

    def append_metrics(self, row: dict):
        """One row: the contract's columns first, then the framework's own (e.g. alignment)."""
        path = self.path / "metrics.csv"
        new = not path.exists()
        fields = list(row)
        if not new:  # a run resumed under a newer version keeps the columns it started with
            with open(path, newline="") as handle:
                fields = next(csv.reader(handle), None) or fields
        try:
            with open(path, "a", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=fields, restval="", extrasaction="ignore")
                if new:
                    writer.writeheader()
                writer.writerow(row)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as error:
            raise TrainingError(f"cannot write {path}: {error.strerror or error}") from None

    def truncate_metrics(self, samples_seen: int):
        """Drop rows written after the checkpoint a resumed run starts from, and a row torn by a kill
        mid-append; the file is rewritten whole (temporary file and rename), never emptied."""
        path = self.path / "metrics.csv"
        if not path.exists():
            return
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            fields = reader.fieldnames
            rows = []
            for row in reader:
                try:
                    complete = None not in row and None not in row.values()
                    if complete and int(row["samples_seen"]) <= samples_seen:
                        rows.append(row)
                except (TypeError, ValueError):
                    continue  # a torn row
        if not fields or "samples_seen" not in fields:
            path.unlink()  # no header: nothing was kept; the next row writes a new one
            return

        def write(handle):
            text = io.StringIO(newline="")
            writer = csv.DictWriter(text, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
            handle.write(text.getvalue().encode("utf-8"))

        write_atomically(path, write)

    def read_metrics(self) -> list[dict]:
        return read_metrics(self.path)
