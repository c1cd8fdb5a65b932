"""Test order and grouping under pytest-xdist (.ci/run: --dist loadgroup). The groups that take
longest are handed out first, then the tests that compile a project (marked standalone, a minute or
more each), then the rest, so that no long test starts when the other worker has nothing left to
do; and a worker stops at once if tests marked xdist_group were not grouped (each worker would then
build the group's expensive fixtures itself, as happened with pytest 9.2)."""

from __future__ import annotations

import os
import tempfile

import pytest

#: xdist_group names, longest first (a sweep on a Dask cluster; the compiled-program faults).
LONGEST_GROUPS = ("test_sweep", "cpp-faults")
#: Slowest tests listed at the end of a CI run (CI=true), so that work on the suite's time starts
#: from measured durations; a run that asks for --durations itself keeps its own.
CI_DURATIONS = 40


def pytest_configure(config):
    if os.environ.get("CI") == "true" and config.option.durations is None:
        config.option.durations = CI_DURATIONS
    # apical evaluate's compiled projects go to a folder of the test run, not the user's cache
    os.environ.setdefault("APICAL_BUILD_CACHE", tempfile.mkdtemp(prefix="apical-test-builds-"))


def group_names(item) -> list[str]:
    return [str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
            for mark in item.iter_markers("xdist_group")]


@pytest.hookimpl(trylast=True)  # after pytest-xdist has named each grouped test after its group
def pytest_collection_modifyitems(config, items):
    if getattr(config.option, "loadgroup", False):
        ungrouped = [item.nodeid for item in items if group_names(item) and "@" not in item.nodeid]
        if ungrouped:
            raise pytest.UsageError(f"pytest-xdist did not group {len(ungrouped)} tests marked xdist_group "
                                    f"(e.g. {ungrouped[0]}); pyproject.toml names the pytest versions that work")

    def rank(item):
        group = min((LONGEST_GROUPS.index(g) for g in group_names(item) if g in LONGEST_GROUPS),
                    default=len(LONGEST_GROUPS))
        return group, item.get_closest_marker("standalone") is None

    items.sort(key=rank)  # stable: the rest keep their order
