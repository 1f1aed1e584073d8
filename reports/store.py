"""Read a results directory: one :class:`CaseResults` per case subdirectory.

A case directory holds ``case.json`` (metadata), one parquet file per grid point (one row per
repetition) and ``verdicts.parquet``.  Nothing here trains or evaluates: it only reads.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from verify.result_schema import BOOKKEEPING

VERDICTS_FILE = "verdicts.parquet"
CASE_FILE = "case.json"

#: numeric columns of a verdict row (evidence, in display order)
FLOAT_COLUMNS = (
    "observed",
    "ci_low",
    "ci_high",
    "predicted",
    "allowed",
    "slack",
    "p_value",
    "p_adjusted",
    "predicted_rate",
    "predicted_floor",
)
_TEXT_COLUMNS = ("case", "bound", "check", "kind", "point_key", "label", "role", "status")
_TEXT_COLUMNS += ("detail", "quantity", "params_json", "statistic", "parameter", "group", "claim")


@dataclass
class CaseResults:
    """Everything stored for one case, ready for rendering."""

    name: str
    directory: Path
    meta: dict[str, Any]
    points: pd.DataFrame  # one row per (point, repetition); empty if no point files
    verdicts: pd.DataFrame  # one row per verdict, with a parsed ``params`` column
    param_columns: list[str] = field(default_factory=list)

    @property
    def varying_params(self) -> list[str]:
        """Grid parameters that take more than one value over the stored points."""
        if self.points.empty:
            return []
        first = self.points.drop_duplicates("point_key")
        return [c for c in self.param_columns if first[c].astype(str).nunique() > 1]

    def point_params(self) -> dict[str, dict[str, Any]]:
        """Grid parameters of every stored point, keyed by point key."""
        if self.points.empty:
            return {}
        first = self.points.drop_duplicates("point_key")
        return {
            str(row["point_key"]): {c: _plain(row[c]) for c in self.param_columns}
            for _, row in first.iterrows()
        }


def find_case_dirs(results_dir: Path) -> list[Path]:
    """Directories under ``results_dir`` (itself included) that hold a ``case.json``."""
    if (results_dir / CASE_FILE).is_file():
        return [results_dir]
    return sorted(p.parent for p in results_dir.rglob(CASE_FILE) if p.is_file())


def load_results(results_dir: str | Path) -> list[CaseResults]:
    """Load every case found under ``results_dir``; case names are made unique."""
    root = Path(results_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such results directory")
    cases = [load_case(d) for d in find_case_dirs(root)]
    seen: dict[str, int] = {}
    for c in cases:
        seen[c.name] = seen.get(c.name, 0) + 1
    for c in cases:
        if seen[c.name] > 1:  # e.g. mutant runs of one case: tell them apart by location
            c.name = c.directory.relative_to(root).as_posix()
    return cases


def load_case(directory: Path) -> CaseResults:
    """Load one case directory."""
    meta = json.loads((directory / CASE_FILE).read_text(encoding="utf-8"))
    name = str(meta.get("name") or directory.name)
    points = _read_points(directory, meta)
    schema = meta.get("schema")
    declared = set(meta.get("base", {})) | set(meta.get("data", {}))
    if schema:  # the declared result schema (verify.result_schema) names the parameters
        params = [c for c in schema["parameters"] if c in points.columns]
    elif declared:  # the case's own parameters: the trainer's outputs are everything else
        # (a data key such as ``seed`` may share its name with a bookkeeping column)
        params = [c for c in points.columns if c in declared and c not in BOOKKEEPING]
    else:  # a store without declarations: every non-curve column that is not bookkeeping
        params = [
            c for c in points.columns if c not in BOOKKEEPING and not _is_array_column(points[c])
        ]
    verdicts = _read_verdicts(directory / VERDICTS_FILE, name)
    return CaseResults(name, directory, meta, points, verdicts, params)


def _read_points(directory: Path, meta: dict[str, Any]) -> pd.DataFrame:
    keys = meta.get("points")
    if keys:  # the case's own list: stale files from an older grid are ignored
        files = [directory / f"{k}.parquet" for k in keys]
        files = [f for f in files if f.is_file()]
    else:
        files = sorted(
            f
            for f in directory.glob("*.parquet")
            if f.name != VERDICTS_FILE and not f.name.startswith(".")
        )
    frames = [pd.read_parquet(f) for f in files]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=["point_key", "rep", "loss"])
    out = pd.concat(frames, ignore_index=True)
    if "point_key" not in out:
        raise ValueError(f"{directory}: point files lack a point_key column")
    out["point_key"] = out["point_key"].astype(str)
    if "rep" not in out:
        out["rep"] = out.groupby("point_key").cumcount()
    return out.sort_values(["point_key", "rep"], kind="stable").reset_index(drop=True)


def _read_verdicts(path: Path, case: str) -> pd.DataFrame:
    frame = pd.read_parquet(path) if path.is_file() else pd.DataFrame()
    for col in FLOAT_COLUMNS:
        frame[col] = (
            pd.to_numeric(frame[col], errors="coerce").astype(float) if col in frame else math.nan
        )
    for col in _TEXT_COLUMNS:
        frame[col] = frame[col].fillna("").astype(str) if col in frame else ""
    if len(frame):
        frame.loc[frame["case"] == "", "case"] = case
        frame.loc[frame["params_json"] == "", "params_json"] = "{}"
    frame["params"] = [_parse_params(s) for s in frame["params_json"]]
    return frame.reset_index(drop=True).astype({c: object for c in _TEXT_COLUMNS})


def _parse_params(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _is_array_column(col: pd.Series) -> bool:
    values = col.dropna()
    return bool(len(values)) and isinstance(values.iloc[0], list | tuple | np.ndarray)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def loss_matrix(rows: pd.DataFrame, column: str = "loss") -> np.ndarray:
    """Curves of one point as a (repetitions, rounds + 1) float array, NaN-padded."""
    curves = [np.asarray(v, dtype=float) for v in rows[column] if v is not None]
    if not curves:
        return np.empty((0, 0))
    width = max(len(c) for c in curves)
    out = np.full((len(curves), width), np.nan)
    for i, c in enumerate(curves):
        out[i, : len(c)] = c
    return out
