"""Signals during training, and the compiled programs a run starts as child processes.

The first SIGINT or SIGTERM asks the run to stop: the chunk under way (or its evaluation) is
discarded, the state from before it is checkpointed and the run exits non-zero; ``--resume``
replays that chunk (runs/train.py). A second signal stops at once, ending the compiled program
too, so that nothing keeps computing after Python has gone.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path


#: What the first signal says: what happens to the work under way, and how to go on.
STOPPING = ("stopping: the chunk or evaluation under way is discarded and the state before it checkpointed; "
            "--resume replays it (again: stop at once)")


class StopSignals:
    """SIGINT and SIGTERM while a run trains: ``received`` holds the first signal's number (None
    until one arrives); a second raises KeyboardInterrupt after ending the child processes."""

    def __init__(self):
        self.received: int | None = None
        self._previous = {}

    def __enter__(self):
        for number in (signal.SIGINT, signal.SIGTERM):
            self._previous[number] = signal.getsignal(number)
            signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc):
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def _handle(self, number, frame):
        if self.received is None:
            self.received = number
            print(f"\n{signal.Signals(number).name}: {STOPPING}", file=sys.stderr, flush=True)
            return
        self.__exit__()
        end_child_processes()
        raise KeyboardInterrupt(f"second {signal.Signals(number).name}")


def end_child_processes() -> None:
    """Send SIGTERM to this process's children (the compiled program of a standalone run)."""
    me = str(os.getpid())
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:
            try:
                os.kill(int(entry.parent.name), signal.SIGTERM)
            except OSError:
                pass
