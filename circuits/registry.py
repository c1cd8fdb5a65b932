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

An entry point that fails to load stops nothing else: reading the registry prints one warning line
naming it on standard error, every other framework works, and selecting its name is a
:class:`ConfigError` of the same line. A framework whose class leaves out a method every
:class:`~apical.circuits.framework.Framework` must have is refused in one line naming the framework
and the methods: when it is registered if its factory is the class itself, else when it is selected
(:func:`get`), where a factory made by :func:`~apical.circuits.framework.lazy` imports its class.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from importlib.metadata import entry_points

from apical.circuits.framework import ConfigError, FrameworkSpec

ENTRY_POINT_GROUP = "apical.frameworks"

#: What a config without ``model.framework`` trains: fixed, so that installing a framework never changes it.
DEFAULT_FRAMEWORK = "biograd"

_found: dict[str, FrameworkSpec] | None = None
_registered: dict[str, FrameworkSpec] = {}
_distributions: dict[str, tuple[str, str]] = {}  # framework name -> (distribution, version) of outside packages
_broken: dict[str, str] = {}  # entry point name -> why it does not load (one line)
_complete: dict[str, FrameworkSpec] = {}  # the frameworks whose class was found to implement every required method


def _as_spec(obj, origin: str) -> FrameworkSpec:
    spec = getattr(obj, "FRAMEWORK", obj)
    if not isinstance(spec, FrameworkSpec):
        raise TypeError(f"{origin} does not name a FrameworkSpec (got {type(spec).__name__})")
    return spec


def _add(found: dict[str, FrameworkSpec], spec: FrameworkSpec, origin: str) -> None:
    if spec.name in found:
        raise ConfigError(f"two frameworks are registered as {spec.name!r} (the second from {origin})")
    found[spec.name] = spec


def _unimplemented(spec: FrameworkSpec, framework_class) -> None:
    """Refuse ``spec`` when ``framework_class``, what its factory builds, leaves out a required method."""
    missing = sorted(getattr(framework_class, "__abstractmethods__", ()))
    if isinstance(framework_class, type) and missing:
        raise ConfigError(f"framework {spec.name!r}: {framework_class.__module__}.{framework_class.__qualname__} does "
                          f"not implement {', '.join(missing)}, which every Framework must (circuits/framework.py, "
                          "docs/frameworks.md)")


def _discover() -> dict[str, FrameworkSpec]:
    import apical.circuits

    found: dict[str, FrameworkSpec] = {}
    for module in pkgutil.iter_modules(apical.circuits.__path__):
        if module.ispkg:
            package = importlib.import_module(f"apical.circuits.{module.name}")
            if hasattr(package, "FRAMEWORK"):
                _add(found, _as_spec(package, package.__name__), package.__name__)
    _broken.clear()
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        origin = f"entry point {entry.name!r} of {ENTRY_POINT_GROUP} ({entry.value})"
        try:
            spec = _as_spec(entry.load(), origin)
            _unimplemented(spec, spec.factory)
        except Exception as error:  # one broken outside package must not stop the others
            _broken[entry.name] = f"{origin} fails to load: {' '.join(str(error).split()) or type(error).__name__}"
            print(f"apical: warning: {_broken[entry.name]}; the other frameworks work", file=sys.stderr)
            continue
        _add(found, spec, origin)
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
    """The framework ``model.framework`` names, its class checked for every required method; a
    ConfigError naming what is wrong (an entry point that fails to load, a method left out) or
    listing the others."""
    found = frameworks()
    if name not in found:
        if name in _broken:
            raise ConfigError(f"config key 'model.framework': {_broken[name]}")
        raise ConfigError(f"config key 'model.framework': {name!r} is not a registered framework "
                          f"(available: {', '.join(found)})")
    spec = found[name]
    if _complete.get(name) is not spec:
        built = spec.factory
        if callable(getattr(built, "load", None)):  # a lazy factory: what it builds, imported
            try:
                built = built.load()
            except Exception:  # fails where the factory is called, as before: no other framework's config stops
                return spec
        _unimplemented(spec, built)
        _complete[name] = spec
    return spec


def broken() -> dict[str, str]:
    """The entry points of ``apical.frameworks`` that fail to load, by name: why, in one line."""
    frameworks()
    return dict(_broken)


def register(spec: FrameworkSpec) -> FrameworkSpec:
    """Add a framework for this process (a notebook's own rule; tests). Returns it."""
    if spec.name in frameworks():
        raise ConfigError(f"a framework named {spec.name!r} is already registered")
    _unimplemented(spec, spec.factory)
    _registered[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a framework added by :func:`register`."""
    _registered.pop(name, None)
    _complete.pop(name, None)


def distribution(name: str) -> tuple[str, str] | None:
    """(distribution name, version) of the installed package a framework came from; None for the
    built-in ones and those added by :func:`register`."""
    frameworks()
    return _distributions.get(name)


def numpy_forms() -> tuple[str, ...]:
    """The frameworks with a numpy form equal to their Brian2 network."""
    return tuple(name for name, spec in frameworks().items() if spec.has_numpy_form)
