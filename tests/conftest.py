"""Test order: the groups that take longest (pytest-xdist keeps each on one worker, .ci/run) are
handed out first, so that no long group starts when the other worker has nothing left to do."""

from __future__ import annotations

#: xdist_group names, longest first (a sweep on a Dask cluster; the compiled-program faults).
LONGEST_GROUPS = ("test_sweep", "cpp-faults")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        groups = [mark.args[0] for mark in item.iter_markers("xdist_group") if mark.args]
        return min((LONGEST_GROUPS.index(g) for g in groups if g in LONGEST_GROUPS), default=len(LONGEST_GROUPS))

    items.sort(key=rank)  # stable: the rest keep their order
