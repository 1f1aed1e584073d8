import math
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verify.case import load
from verify.grid import expand
from verify.schema import CaseError

from .conftest import ROOT, TINY, write_case

GOOD = TINY.replace("p = [1, 2, 3]", "p = [1, 2]") + "[[points]]\nxi = 1.0\n"


def test_good_case_loads_and_expands(tmp_path):
    case = load(write_case(tmp_path / "c.toml", GOOD))
    points = expand(case)
    assert len(points) == 5
    assert len({p.key for p in points}) == 5
    assert case.checks["floor"]["tail"] == 10 and case.checks["floor"]["kind"] == "floor"


@pytest.mark.parametrize(
    "edit,message",
    [
        (("[model]\nm = 60", "[model]\nm = 60\nwidth = 3"), "model.width: unknown key"),
        (("xi = 0.5", "xi = 1.5"), "masking.xi"),
        (("xi = 0.5", "xi = 0.0"), "masking.xi"),
        (("xi = 0.5", "xi = nan"), "masking.xi"),
        (("eta = 0.05", "eta = -1.0"), "training.eta"),
        (("p = [1, 2]", "p = [0, 2]"), "grid.p[0]"),
        (("tau = [1, 2]", "tau = [1, 0]"), "grid.tau[1]"),
        (("m = 60", "m = 0"), "model.m"),
        (("liao2022.theorem1", "liao2022.nope"), "unknown bound id"),
        (("[checks.floor]", "[checks.floorr]"), "unknown check kind"),
        (("tail = 10", "tial = 10"), "checks.floor.tial: unknown key"),
        (('name = "tiny"', 'name = "tiny"\ncolour = 1'), "colour: unknown key"),
        (
            (
                "repetitions = 2\n[data]\nn = 6\nd = 3\n[model]\nm = 60",
                "repetitions = 50\n[data]\nn = 6\nd = 3\n[model]\nm = 9000000",
            ),
            "GiB",
        ),
        (("scheme", "scheme"), None),
    ],
)
def test_bad_input_names_the_key(tmp_path, edit, message):
    old, new = edit
    text = GOOD.replace(old, new, 1) if old in GOOD else GOOD
    path = write_case(tmp_path / "c.toml", text)
    if message is None:
        load(path)
        return
    with pytest.raises(CaseError) as exc:
        load(path)
    assert str(path) in str(exc.value) and message in str(exc.value)


def test_malformed_toml_is_a_clear_error(tmp_path):
    path = write_case(tmp_path / "c.toml", "name = [unclosed")
    with pytest.raises(CaseError, match="malformed TOML"):
        load(path)


def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path):
    path = write_case(tmp_path / "c.toml", GOOD.replace("xi = 0.5", "xi = 2.0"))
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "verify", "run", str(path), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "masking.xi" in lines[0] and "(0, 1]" in lines[0]
    assert not out.exists()


def test_cli_list_prints_the_registry():
    proc = subprocess.run(
        [sys.executable, "-m", "verify", "list"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 0
    for bound_id in (
        "liao2022.theorem1",
        "liao2022.dropout",
        "liao2022.multisample_dropout",
        "liao2022.ist",
    ):
        assert bound_id in proc.stdout


def test_shipped_cases_are_valid():
    for path in sorted((ROOT / "cases").glob("*.toml")):
        load(path)


toml_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-10, 10**9)
    | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


def _dump(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.encode("unicode_escape").decode().replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_dump(v) for v in value if v is not None) + "]"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f'"{k}" = {_dump(v)}' for k, v in value.items() if v is not None) + "}"
        )
    return '""'


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "name",
                "bounds",
                "repetitions",
                "grid",
                "model",
                "masking",
                "checks",
                "points",
                "data",
                "training",
                "quick",
                "calibration",
                "false_alarm",
                "zzz",
            ]
        ),
        toml_values,
        max_size=6,
    ),
    st.text(max_size=30),
)
def test_random_documents_never_crash_the_loader(tmp_path, doc, junk):
    lines = [f"{k} = {_dump(v)}" for k, v in doc.items() if v is not None]
    for text in ("\n".join(lines), junk, GOOD + "\n" + "\n".join(lines)):
        path = Path(tmp_path) / "r.toml"
        path.write_text(text, encoding="utf-8")
        try:
            load(path)
        except CaseError:
            pass
