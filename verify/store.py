"""Result store: tidy parquet under ``results/<case>/``, one file per grid point.

Each point file has one row per repetition (curves as list columns, scalars, the point's
parameters and environment columns) and is written atomically (temporary file in the
same directory, then ``os.replace``), so an interrupted run never leaves a partial file.
A point is skipped on resume when its file exists with the same fingerprint: grid
parameters, data settings, repetitions, seeds and code version.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import tempfile
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy

from .result_schema import OUTPUTS_KEY, SCHEMA_VERSION, Outputs

CODE_FILES = ("verify/trainers", "bounds")


@cache
def code_version() -> str:
    """Hash of the trainer and bound sources: results from other code are recomputed."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for sub in CODE_FILES:
        for f in sorted((root / sub).rglob("*.py")):
            h.update(f.relative_to(root).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


@cache
def environment() -> dict[str, str]:
    root = Path(__file__).resolve().parent.parent
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            ).stdout.strip()
            or "unknown"
        )
    except OSError:
        commit = "unknown"
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pandas": pd.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "git_commit": commit,
    }


def atomic_write_bytes(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(directory: Path) -> None:
    """Temporary files left by a killed run (never renamed into place) are garbage."""
    for tmp in directory.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def write_table(path: Path, frame: pd.DataFrame) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    atomic_write_bytes(path, lambda tmp: pq.write_table(table, tmp))


def write_json(path: Path, obj: Any) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True, default=_jsonable)
    atomic_write_bytes(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def point_path(case_dir: Path, key: str) -> Path:
    return case_dir / f"{key}.parquet"


def fingerprint(task_inputs: dict[str, Any]) -> str:
    """What a stored point must match to be reused: every input of its task and the code."""
    text = json.dumps(
        {**task_inputs, "schema_version": SCHEMA_VERSION}, sort_keys=True, default=_jsonable
    )
    return hashlib.sha256(f"{text}\0{code_version()}".encode()).hexdigest()[:24]


def is_done(case_dir: Path, key: str, expected: str) -> bool:
    """The point's file exists and was written for the same inputs and code."""
    path = point_path(case_dir, key)
    if not path.exists():
        return False
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return False
    return meta.get(b"fingerprint", b"").decode() == expected


def write_point(case_dir: Path, key: str, frame: pd.DataFrame, print_: str) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[b"code_version"] = code_version().encode()
    meta[b"fingerprint"] = print_.encode()
    meta[OUTPUTS_KEY.encode()] = json.dumps(frame.attrs[OUTPUTS_KEY]).encode()
    table = table.replace_schema_metadata(meta)
    atomic_write_bytes(point_path(case_dir, key), lambda tmp: pq.write_table(table, tmp))


def read_points(case_dir: Path, keys: list[str]) -> pd.DataFrame:
    """The points' rows; ``attrs["outputs"]``: their merged outputs' declaration (absent when
    a point file predates the result schema).  Each file is read once."""
    tables = [pq.read_table(point_path(case_dir, k)) for k in keys]
    frames = [t.to_pandas() for t in tables]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    declared = [stored_outputs(t.schema) for t in tables]
    if declared and all(d is not None for d in declared):
        table.attrs[OUTPUTS_KEY] = Outputs.merge(declared).to_json()
    return table


def stored_outputs(schema: pa.Schema) -> Outputs | None:
    """The outputs' declaration stored in a point file's metadata (``write_point``)."""
    raw = (schema.metadata or {}).get(OUTPUTS_KEY.encode())
    return Outputs.from_json(json.loads(raw)) if raw else None


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
