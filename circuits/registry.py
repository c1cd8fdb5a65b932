"""Every learning framework Apical can run, found rather than listed.

Two sources, read once per process:

- the packages of ``apical.circuits`` whose ``__init__`` defines ``FRAMEWORK`` (a
  :class:`~apical.circuits.framework.FrameworkSpec`): the built-in frameworks;
- the entry points of the group ``apical.frameworks`` that installed packages declare, each
  naming a ``FrameworkSpec`` (or a module holding ``FRAMEWORK``), so that a lab keeps its rule in
  its own package and still uses ``apical train/evaluate/analyze/bench/sweep``::

      # the lab's pyproject.toml
      [project.entry-points."apical.frameworks"]
      my_rule = "my_lab.my_rule:FRAMEWORK"

:func:`register` adds one from a notebook or a test.
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import entry_points

from apical.circuits.framework import ConfigError, FrameworkSpec

ENTRY_POINT_GROUP = "apical.frameworks"

_found: dict[str, FrameworkSpec] | None = None
_registered: dict[str, FrameworkSpec] = {}
_distributions: dict[str, tuple[str, str]] = {}  # framework name -> (distribution, version) of outside packages


def _as_spec(obj, origin: str) -> FrameworkSpec:
    spec = getattr(obj, "FRAMEWORK", obj)
    if not isinstance(spec, FrameworkSpec):
        raise TypeError(f"{origin} does not name a FrameworkSpec (got {type(spec).__name__})")
    return spec


def _add(found: dict[str, FrameworkSpec], spec: FrameworkSpec, origin: str) -> None:
    if spec.name in found:
        raise ConfigError(f"two frameworks are registered as {spec.name!r} (the second from {origin})")
    found[spec.name] = spec


def _discover() -> dict[str, FrameworkSpec]:
    import apical.circuits

    found: dict[str, FrameworkSpec] = {}
    for module in pkgutil.iter_modules(apical.circuits.__path__):
        if module.ispkg:
            package = importlib.import_module(f"apical.circuits.{module.name}")
            if hasattr(package, "FRAMEWORK"):
                _add(found, _as_spec(package, package.__name__), package.__name__)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry.load()
        except Exception as error:  # a broken outside package must say which one it is
            raise ConfigError(f"entry point {entry.name!r} of {ENTRY_POINT_GROUP} ({entry.value}) fails to "
                              f"load: {error}") from error
        spec = _as_spec(loaded, f"entry point {entry.value}")
        _add(found, spec, f"entry point {entry.value}")
        if entry.dist is not None:
            _distributions[spec.name] = (entry.dist.name, entry.dist.version)
    return found


def frameworks() -> dict[str, FrameworkSpec]:
    """Every registered framework by name, in listing order (built-in ones first)."""
    global _found
    if _found is None:
        _found = _discover()
    merged = dict(_found)
    for spec in _registered.values():
        _add(merged, spec, "register()")
    return dict(sorted(merged.items(), key=lambda item: (item[1].order, item[0])))


def names() -> tuple[str, ...]:
    return tuple(frameworks())


def get(name: str) -> FrameworkSpec:
    """The framework ``model.framework`` names; a ConfigError listing the others otherwise."""
    found = frameworks()
    try:
        return found[name]
    except KeyError:
        raise ConfigError(f"config key 'model.framework': {name!r} is not a registered framework "
                          f"(available: {', '.join(found)})") from None


def register(spec: FrameworkSpec) -> FrameworkSpec:
    """Add a framework for this process (a notebook's own rule; tests). Returns it."""
    if spec.name in frameworks():
        raise ConfigError(f"a framework named {spec.name!r} is already registered")
    _registered[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a framework added by :func:`register`."""
    _registered.pop(name, None)


def distribution(name: str) -> tuple[str, str] | None:
    """(distribution name, version) of the installed package a framework came from; None for the
    built-in ones and those added by :func:`register`."""
    frameworks()
    return _distributions.get(name)


def numpy_forms() -> tuple[str, ...]:
    """The frameworks with a numpy form equal to their Brian2 network."""
    return tuple(name for name, spec in frameworks().items() if spec.has_numpy_form)
