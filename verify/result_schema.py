"""The declared layout of a case's stored results: which columns are the point's parameters,
which the trainer's outputs (curves and scalars), which the run's bookkeeping.

A trainer returns typed :class:`~verify.trainers.outputs.RunOutput` objects (curves apart
from scalars); :func:`outputs_of` records that typing where the outputs are produced, the
store keeps it in every point file's metadata, and the runner writes the case's
:class:`ResultSchema` into ``case.json`` (key ``schema``).  Evaluation, mutation testing and
the reports read it, so no layer infers a column's role from its name or its type.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: bump when the stored layout changes: stores written before are recomputed
SCHEMA_VERSION = 1

#: columns every point file has that describe the run, not the point or its outputs
BOOKKEEPING = (
    "case",
    "point_key",
    "rep",
    "seed",
    "wall_time_s",
    "code_version",
    "python",
    "numpy",
    "scipy",
    "pandas",
    "platform",
    "machine",
    "git_commit",
)

#: key of the outputs' declaration in a result frame's ``attrs`` and a point file's metadata
OUTPUTS_KEY = "outputs"


class SchemaError(ValueError):
    """A trainer's outputs do not match a declared layout."""


@dataclass(frozen=True)
class Outputs:
    """A trainer's output names at one point: curves (one value per logged step) and
    scalars, the same for every repetition."""

    curves: tuple[str, ...]
    scalars: tuple[str, ...]

    def to_json(self) -> dict[str, list[str]]:
        return {"curves": list(self.curves), "scalars": list(self.scalars)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Sequence[str]]) -> Outputs:
        return cls(tuple(obj["curves"]), tuple(obj["scalars"]))

    @classmethod
    def merge(cls, many: Iterable[Outputs]) -> Outputs:
        """The union over points (a point may report an output the others do not)."""
        curves: dict[str, None] = {}
        scalars: dict[str, None] = {}
        for o in many:
            curves |= dict.fromkeys(o.curves)
            scalars |= dict.fromkeys(o.scalars)
        clash = set(curves) & set(scalars)
        if clash:
            raise SchemaError(f"outputs reported both as curves and as scalars: {sorted(clash)}")
        return cls(tuple(curves), tuple(scalars))


def outputs_of(outputs: Sequence[Any]) -> Outputs:
    """The declaration of one point's repetitions (``RunOutput`` objects); every repetition
    must report the same outputs."""
    if not outputs:
        raise SchemaError("the trainer returned no repetition")
    first = outputs[0]
    declared = Outputs(tuple(first.curves), tuple(first.scalars))
    for r, out in enumerate(outputs[1:], start=1):
        if (tuple(out.curves), tuple(out.scalars)) != (declared.curves, declared.scalars):
            raise SchemaError(
                f"repetition {r} reports curves {sorted(out.curves)} and scalars "
                f"{sorted(out.scalars)}; repetition 0 reported {sorted(declared.curves)} and "
                f"{sorted(declared.scalars)}"
            )
    clash = (set(declared.curves) & set(declared.scalars)) | (
        set(declared.curves + declared.scalars) & set(BOOKKEEPING)
    )
    if clash:
        raise SchemaError(f"output names clash with each other or with bookkeeping: {clash}")
    return declared


@dataclass(frozen=True)
class ResultSchema:
    """The roles of a case's result columns (written to ``case.json`` as ``schema``)."""

    trainer: str
    #: every parameter of a point: the case's data settings and the point's parameters
    parameters: tuple[str, ...]
    #: the parameters the case's grid varies (axes, in the case file's order)
    grid: tuple[str, ...]
    curves: tuple[str, ...]
    scalars: tuple[str, ...]
    bookkeeping: tuple[str, ...] = BOOKKEEPING
    version: int = SCHEMA_VERSION

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.curves + self.scalars

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "trainer": self.trainer,
            "parameters": list(self.parameters),
            "grid": list(self.grid),
            "curves": list(self.curves),
            "scalars": list(self.scalars),
            "bookkeeping": list(self.bookkeeping),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ResultSchema:
        return cls(
            trainer=str(obj["trainer"]),
            parameters=tuple(obj["parameters"]),
            grid=tuple(obj["grid"]),
            curves=tuple(obj["curves"]),
            scalars=tuple(obj["scalars"]),
            bookkeeping=tuple(obj.get("bookkeeping", BOOKKEEPING)),
            version=int(obj.get("version", SCHEMA_VERSION)),
        )


def declared_outputs(results: Any) -> Outputs:
    """The outputs' declaration a result frame carries (``read_points`` sets it)."""
    obj = getattr(results, "attrs", {}).get(OUTPUTS_KEY)
    if obj is None:
        raise SchemaError(
            "the result table declares no outputs (point files written before the result "
            "schema was recorded): rerun the case"
        )
    return Outputs.from_json(obj)
