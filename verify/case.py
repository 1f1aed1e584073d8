"""Case files: load a TOML verification case and validate it strictly.

A case names its trainer, the bounds it verifies, the base parameters (in the trainer's
sections, e.g. ``[model]``, ``[training]``, ``[masking]``), a ``[grid]`` of lists (Cartesian
product) and/or explicit ``[[points]]``, the ``repetitions``, the family-wise
``false_alarm`` budget of its checks, the ``[calibration]`` split and the ``[checks]``.
``plugins`` lists modules to import first (``.py`` files relative to the case file, or
module names), so a case can bring its own bounds and trainer (:mod:`bounds.plugins`).
Every unknown key and every out-of-range value raises :class:`CaseError` naming the
file and the key.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bounds
from bounds.plugins import PluginError, import_plugin, plugin_spec

from . import trainers
from .checks import CHECKS
from .grid import DATA_AXIS, expand
from .schema import CaseError, Spec, positive_int

#: refuse grids whose estimated peak memory per task exceeds this many bytes
MAX_TASK_BYTES = 8 * 2**30
MAX_POINTS = 100_000

TOP = {
    "name": Spec(str, required=True),
    "description": Spec(str, ""),
    "trainer": Spec(str, "masked_shallow"),
    "repetitions": positive_int(4, maximum=10_000),
    "false_alarm": Spec(float, 0.01, lambda v: 0 < v <= 0.5, "number in (0, 0.5]"),
    "seed": Spec(int, 0, lambda v: v >= 0, "integer >= 0"),
}
TABLES = ("bounds", "grid", "points", "calibration", "checks", "quick", "plugins")


@dataclass(frozen=True)
class Case:
    """A validated verification case."""

    name: str
    description: str
    path: Path
    trainer: trainers.Trainer
    bounds: tuple[str, ...]
    repetitions: int
    false_alarm: float
    seed: int
    data: dict[str, Any]
    base: dict[str, Any]  # flat base parameters of the grid sections
    grid: dict[str, list[Any]]
    points: list[dict[str, Any]]
    calibration: dict[str, Any]
    checks: dict[str, dict[str, Any]]
    quick: dict[str, Any] = field(default_factory=dict)
    #: the name seeds derive from when not ``name``: a variant of a case (a mutant trainer)
    #: keeps the original's data, initialisations and masks (common random numbers)
    seed_name: str = ""
    #: the case's plugins in canonical form (absolute ``.py`` paths, module names): every
    #: process that trains the case imports them first
    plugins: tuple[str, ...] = ()

    @property
    def seed_entropy(self) -> int:
        """The case's contribution to every seed: its name and its ``seed``."""
        digest = hashlib.sha256(f"{self.seed_name or self.name}\0{self.seed}".encode()).digest()
        return int.from_bytes(digest[:16], "little")

    def with_quick(self) -> Case:
        """The case with its ``[quick]`` overrides applied (``--quick``)."""
        if not self.quick:
            return self
        base = dict(self.base)
        reps = self.repetitions
        for k, v in self.quick.items():
            if k == "repetitions":
                reps = v
            else:
                base[k] = v
        grid = {k: v for k, v in self.grid.items() if k not in self.quick}
        points = [{k: v for k, v in p.items() if k not in self.quick} for p in self.points]
        return Case(
            **{
                **self.__dict__,
                "base": base,
                "grid": grid,
                "points": points,
                "repetitions": reps,
                "quick": {},
            }
        )


def load(path: str | Path) -> Case:
    """Read and validate a case file; :class:`CaseError` on any bad input."""
    path = Path(path)
    where = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CaseError(f"{where}: no such case file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CaseError(f"{where}: malformed TOML: {exc}") from None
    try:
        return _validate(raw, path)
    except CaseError as exc:
        raise CaseError(f"{where}: {exc}") from None


def _table(raw: Any, key: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise CaseError(f"{key}: expected a table, got {raw!r}")
    return raw


def _load_plugins(raw: Any, base: Path) -> tuple[str, ...]:
    """Validate the ``plugins`` list and import its modules (before anything is resolved)."""
    if not isinstance(raw, list) or not all(isinstance(s, str) and s for s in raw):
        raise CaseError(f"plugins: expected a list of module names or .py paths, got {raw!r}")
    specs = []
    for i, spec in enumerate(raw):
        try:
            import_plugin(spec, base)
        except PluginError as exc:
            raise CaseError(f"plugins[{i}]: {exc}") from None
        specs.append(plugin_spec(spec, base))
    return tuple(specs)


def _validate(raw: dict[str, Any], path: Path) -> Case:
    plugins = _load_plugins(raw.get("plugins", []), path.parent)
    trainer_name = raw.get("trainer", TOP["trainer"].default)
    if not isinstance(trainer_name, str):
        raise CaseError(f"trainer: expected a string, got {trainer_name!r}")
    trainer = trainers.get(trainer_name)
    sections = trainer.schema
    allowed = set(TOP) | set(TABLES) | set(sections)
    for key in raw:
        if key not in allowed:
            raise CaseError(f"{key}: unknown key; allowed top-level keys: {sorted(allowed)}")
    top = {}
    for key, spec in TOP.items():
        if key in raw:
            top[key] = spec.validate(key, raw[key])
        elif spec.required:
            raise CaseError(f"{key}: required key is missing")
        else:
            top[key] = spec.default

    values: dict[str, dict[str, Any]] = {}
    for section, specs in sections.items():
        given = _table(raw.get(section, {}), section)
        for key in given:
            if key not in specs:
                raise CaseError(f"{section}.{key}: unknown key; allowed: {sorted(specs)}")
        values[section] = {
            key: spec.validate(f"{section}.{key}", given[key]) if key in given else spec.default
            for key, spec in specs.items()
            if key in given or not spec.omit_default
        }
    data = values.pop("data", {})
    flat_specs = {k: s for sec in trainer.grid_sections for k, s in sections[sec].items()}
    if "seed" in sections.get("data", {}):  # data as a grid axis: one data set per seed
        flat_specs[DATA_AXIS] = sections["data"]["seed"]
    base = {k: v for sec in trainer.grid_sections for k, v in values[sec].items()}

    bound_ids = raw.get("bounds")
    if (
        not isinstance(bound_ids, list)
        or not bound_ids
        or not all(isinstance(b, str) for b in bound_ids)
    ):
        raise CaseError("bounds: required: a non-empty list of bound ids")
    for b in bound_ids:
        try:
            bounds.get(b)
        except KeyError as exc:
            raise CaseError(f"bounds: {exc.args[0]}") from None

    grid = {}
    for key, vals in _table(raw.get("grid", {}), "grid").items():
        if key not in flat_specs:
            raise CaseError(f"grid.{key}: not a grid parameter; allowed: {sorted(flat_specs)}")
        if not isinstance(vals, list) or not vals:
            raise CaseError(f"grid.{key}: expected a non-empty list of values")
        grid[key] = [flat_specs[key].validate(f"grid.{key}[{i}]", v) for i, v in enumerate(vals)]

    raw_points = raw.get("points", [])
    if not isinstance(raw_points, list):
        raise CaseError("points: expected an array of tables ([[points]])")
    points = []
    for i, pt in enumerate(raw_points):
        pt = _table(pt, f"points[{i}]")
        for key, v in pt.items():
            if key not in flat_specs:
                raise CaseError(
                    f"points[{i}].{key}: not a grid parameter; allowed: {sorted(flat_specs)}"
                )
            pt[key] = flat_specs[key].validate(f"points[{i}].{key}", v)
        points.append(dict(pt))

    calibration = _validate_calibration(
        _table(raw.get("calibration", {}), "calibration"), flat_specs
    )
    checks = _validate_checks(_table(raw.get("checks", {}), "checks"))
    calibrated = sorted({q for b in bound_ids for q in bounds.get(b).forms})
    for name, cfg in checks.items():
        if cfg["bound"] and cfg["bound"] not in bound_ids:
            raise CaseError(
                f"checks.{name}.bound: {cfg['bound']!r} is not one of the case's bounds {bound_ids}"
            )
        if cfg["kind"] == "form" and cfg["quantity"] not in calibrated:
            raise CaseError(
                f"checks.{name}.quantity: {cfg['quantity']!r} is not a calibrated form of "
                f"{bound_ids}; allowed: {calibrated}"
            )

    quick = {}
    for key, v in _table(raw.get("quick", {}), "quick").items():
        if key == "repetitions":
            quick[key] = TOP["repetitions"].validate("quick.repetitions", v)
        elif key in flat_specs:
            quick[key] = flat_specs[key].validate(f"quick.{key}", v)
        else:
            raise CaseError(f"quick.{key}: unknown key; allowed: repetitions, {sorted(flat_specs)}")

    case = Case(
        name=top["name"],
        description=top["description"],
        path=path,
        trainer=trainer,
        bounds=tuple(bound_ids),
        repetitions=top["repetitions"],
        false_alarm=top["false_alarm"],
        seed=top["seed"],
        data=data,
        base=base,
        grid=grid,
        points=points,
        calibration=calibration,
        checks=checks,
        quick=quick,
        plugins=plugins,
    )
    _check_size(case)
    _check_size(case.with_quick())
    return case


def _validate_calibration(raw: dict[str, Any], flat_specs: Mapping[str, Spec]) -> dict[str, Any]:
    out: dict[str, Any] = {"split": "checkerboard", "where": {}}
    for key, v in raw.items():
        if key == "split":
            out["split"] = Spec(str, choices=("checkerboard", "where")).validate(
                "calibration.split", v
            )
        elif key == "where":
            where = _table(v, "calibration.where")
            for k, vals in where.items():
                if k not in flat_specs:
                    raise CaseError(f"calibration.where.{k}: not a grid parameter")
                if not isinstance(vals, list):
                    raise CaseError(f"calibration.where.{k}: expected a list of values")
            out["where"] = where
            out["split"] = "where"
        else:
            raise CaseError(f"calibration.{key}: unknown key; allowed: split, where")
    return out


def _validate_checks(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    if not raw:
        raise CaseError("checks: at least one check is required")
    out = {}
    for name, cfg in raw.items():
        cfg = dict(_table(cfg, f"checks.{name}"))
        kind = cfg.pop("kind", name)
        if kind not in CHECKS:
            raise CaseError(f"checks.{name}: unknown check kind {kind!r}; known: {sorted(CHECKS)}")
        specs = CHECKS[kind].params
        only = cfg.pop("bound", "")
        if not isinstance(only, str):
            raise CaseError(f"checks.{name}.bound: expected a bound id (string), got {only!r}")
        for key in cfg:
            if key not in specs:
                raise CaseError(f"checks.{name}.{key}: unknown key; allowed: {sorted(specs)}")
        missing = [key for key, spec in specs.items() if spec.required and key not in cfg]
        if missing:
            raise CaseError(f"checks.{name}: required key(s) missing: {missing}")
        out[name] = {"kind": kind, "bound": only} | {
            key: spec.validate(f"checks.{name}.{key}", cfg[key]) if key in cfg else spec.default
            for key, spec in specs.items()
        }
    return out


def _check_size(case: Case) -> None:
    points = expand(case, limit=MAX_POINTS)
    if len(points) > MAX_POINTS:
        raise CaseError(f"grid: more than {MAX_POINTS} points; allowed: at most {MAX_POINTS}")
    for pt in points:
        need = case.trainer.memory_bytes({**case.data, **pt.params}, case.repetitions)
        if need > MAX_TASK_BYTES:
            raise CaseError(
                f"grid: point {pt.label} needs about {need / 2**30:.1f} GiB per task; "
                f"allowed: at most {MAX_TASK_BYTES / 2**30:.0f} GiB (reduce m, n, p or repetitions)"
            )
