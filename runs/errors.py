"""What stops a run or a tool: one line each, printed by the ``apical`` command (runs/cli.py)."""

from __future__ import annotations


class TrainingError(RuntimeError):
    """Training cannot go on (divergence, a results directory in use, a bad resume, a file that
    cannot be written)."""


class CheckpointError(TrainingError):
    """A checkpoint file cannot be used (truncated, damaged, not a checkpoint)."""


class Interrupted(TrainingError):
    """SIGINT or SIGTERM stopped a run; the state before the unfinished chunk is checkpointed."""

    def __init__(self, message: str, signal_number: int):
        super().__init__(message)
        self.exit_code = 128 + signal_number
