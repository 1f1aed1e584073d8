"""Discovery of the modules that register bounds, trainers and check kinds.

Registration happens when a module is imported (``@bounds.register``,
``verify.trainers.register(...)``), so discovering a contribution means importing its
module.  Three sources, in this order:

* the package's own modules (:func:`import_package`): a new paper is a new file in
  ``bounds/`` or ``verify/trainers/``, and no other file names it;
* installed distributions' entry points (:func:`import_entry_points`), e.g. in the
  ``pyproject.toml`` of a corollary package::

      [project.entry-points."maskverify.bounds"]
      my_corollary = "my_corollary.bounds"

* a case file's ``plugins = ["my_corollary.py", "mypkg.bounds"]`` (:func:`import_plugin`):
  paths ending in ``.py`` are resolved relative to the case file, anything else is a module
  name.  Worker processes import the same list before they train (``verify.executors``).

Importing is idempotent: a module is imported once per process whatever names it is reached
by (a file is keyed by its resolved path).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Iterable
from importlib.metadata import entry_points
from pathlib import Path

__all__ = ["import_entry_points", "import_package", "import_plugin", "plugin_spec"]


class PluginError(ImportError):
    """A contributed module cannot be imported; the message names it and the cause."""


def import_package(package: str, skip: Iterable[str] = ()) -> list[str]:
    """Import every module of ``package`` (sorted by name, so registration order is fixed).

    Names starting with ``_`` and those in ``skip`` (modules that register nothing and need
    an optional extra) are left out.  Returns the imported module names.
    """
    pkg = sys.modules[package]
    skip = set(skip)
    names = sorted(
        info.name
        for info in pkgutil.iter_modules(pkg.__path__)
        if not info.name.startswith("_") and info.name not in skip
    )
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return [f"{package}.{name}" for name in names]


def import_entry_points(group: str) -> list[str]:
    """Load every entry point of ``group`` (e.g. ``maskverify.bounds``) of the installed
    distributions; :class:`PluginError` names the entry point that fails."""
    loaded = []
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        try:
            ep.load()
        except Exception as exc:  # any failure of foreign code becomes one clear line
            raise PluginError(
                f"entry point {group}:{ep.name} = {ep.value!r} cannot be loaded: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        loaded.append(ep.value)
    return loaded


def plugin_spec(spec: str, base: Path | None = None) -> str:
    """The canonical form of a plugin entry: an absolute path for a ``.py`` file (relative
    paths are taken from ``base``), the module name otherwise."""
    if spec.endswith(".py"):
        path = Path(spec)
        if not path.is_absolute():
            path = (base or Path.cwd()) / path
        return str(path.resolve())
    return spec


def import_plugin(spec: str, base: Path | None = None) -> str:
    """Import one plugin (a ``.py`` file or a module name) once; returns its module name."""
    spec = plugin_spec(spec, base)
    if not spec.endswith(".py"):
        try:
            importlib.import_module(spec)
        except Exception as exc:
            raise PluginError(f"cannot import module {spec!r}: {type(exc).__name__}: {exc}") from exc
        return spec
    path = Path(spec)
    digest = hashlib.sha256(spec.encode()).hexdigest()[:12]
    name = f"maskverify_plugin_{path.stem}_{digest}"
    if name in sys.modules:
        return name
    if not path.is_file():
        raise PluginError(f"no such file {spec!r}")
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise PluginError(f"{spec!r} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # before executing: dataclasses and pickling look it up
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise PluginError(f"{spec!r}: {type(exc).__name__}: {exc}") from exc
    return name
