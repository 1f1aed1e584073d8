"""Bounds and trainers contributed without editing the package: package discovery, entry
points of installed distributions, and a case file's ``plugins`` (examples/corollary)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

import bounds
from bounds.plugins import PluginError, import_package, import_plugin
from tests.conftest import ROOT, TINY, write_case
from verify import trainers
from verify.case import load
from verify.cli import main
from verify.executors import run_task
from verify.grid import data_rng, expand
from verify.runner import make_task
from verify.testing import check_trainer

EXAMPLE = ROOT / "examples" / "corollary" / "case.toml"


def _python(args: list[str], env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=kw.pop("cwd", ROOT),
        timeout=600,
        env={**os.environ, **(env or {})},
        **kw,
    )


def test_example_corollary_end_to_end_through_the_cli(tmp_path):
    """The shipped corollary passes from a fresh interpreter with two worker processes,
    and its negative control (a 10% faster claimed contraction) makes the run exit 1."""
    out = tmp_path / "results"
    proc = _python(
        ["-m", "verify", "run", str(EXAMPLE), "--out", str(out), "--no-progress"]
        + ["--jobs", "2", "--executor", "process"]
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "corollary_full_gd: pass: 8 " in proc.stdout and (out / "report.html").exists()
    verdicts = pd.read_parquet(out / "corollary_full_gd" / "verdicts.parquet")
    assert set(verdicts["bound"]) == {"corollary.full_gd"} and set(verdicts["status"]) == {"pass"}
    # negative control on the stored runs (reused: the perturbation is not part of a run)
    args = ["run", str(EXAMPLE), "--out", str(out), "--no-progress", "--no-report"]
    assert main([*args, "--perturb", "contraction=0.9"]) == 1
    wrong = pd.read_parquet(out / "corollary_full_gd" / "verdicts.parquet")
    assert (wrong["status"] == "fail").sum() >= 4


def test_a_fresh_worker_imports_the_case_plugins(tmp_path):
    """A task pickled for a spawned worker (Dask) carries the case's plugins: a fresh
    interpreter resolves the plugin's trainer and computes the same numbers; without the
    plugin list it does not know the trainer."""
    case = load(EXAMPLE)
    X, y = case.trainer.make_data(case.data, data_rng(case), case.path.parent)
    task = make_task(case, expand(case)[0], X, y)
    assert task.plugins == (str((EXAMPLE.parent / "full_gd.py").resolve()),)
    script = "import pickle, sys; from verify.executors import run_task; " + (
        "t = pickle.load(open(sys.argv[1], 'rb')); run_task(t)[1].to_pickle(sys.argv[2])"
    )
    for plugins in (task.plugins, ()):
        path = tmp_path / "task.pkl"
        path.write_bytes(pickle.dumps(task.__class__(**{**task.__dict__, "plugins": plugins})))
        proc = _python(["-c", script, str(path), str(tmp_path / "rows.pkl")])
        if not plugins:
            assert proc.returncode != 0 and "unknown trainer 'full_gd'" in proc.stderr
            continue
        assert proc.returncode == 0, proc.stderr
        here = run_task(task)[1]
        there = pd.read_pickle(tmp_path / "rows.pkl")
        for column in ("loss", "worst_contraction", "lambda_min_H0"):
            assert there[column].tolist() == here[column].tolist()


def test_loading_a_case_twice_imports_its_plugin_once():
    first, second = load(EXAMPLE), load(EXAMPLE)
    assert first.plugins == second.plugins
    assert import_plugin(first.plugins[0]) == import_plugin("full_gd.py", EXAMPLE.parent)
    assert trainers.get("full_gd") is first.trainer
    check_trainer(first.trainer)  # a user's trainer meets the same contract


@pytest.mark.parametrize(
    "plugins, message",
    [
        ('"full_gd.py"', "plugins: expected a list"),
        ('["missing.py"]', "plugins[0]: no such file"),
        ('["no_such_module_here"]', "plugins[0]: cannot import module 'no_such_module_here'"),
        ('["broken.py"]', "plugins[0]: " + "'{path}': ZeroDivisionError: division by zero"),
    ],
)
def test_bad_plugins_are_one_line_errors_exit_2(tmp_path, plugins, message):
    (tmp_path / "broken.py").write_text("x = 1 / 0\n", encoding="utf-8")
    path = write_case(tmp_path / "c.toml", f"plugins = {plugins}\n" + TINY)
    out = tmp_path / "results"
    proc = _python(["-m", "verify", "run", str(path), "--out", str(out)])
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    expected = message.format(path=(tmp_path / "broken.py").resolve())
    assert len(lines) == 1 and str(path) in lines[0] and expected in lines[0], lines
    assert not out.exists()


def test_entry_points_of_an_installed_distribution_register_bounds_and_trainers(tmp_path):
    """A distribution declaring ``maskverify.bounds`` / ``maskverify.trainers`` entry points
    (here a bare ``.dist-info`` on the path, as pip would install it) is imported by
    ``import bounds`` / ``import verify.trainers``."""
    site = tmp_path / "site"
    (site / "epdemo").mkdir(parents=True)
    (site / "epdemo" / "__init__.py").write_text("", encoding="utf-8")
    (site / "epdemo" / "bound.py").write_text(
        textwrap.dedent(
            """
            import bounds

            @bounds.register
            class Demo(bounds.Bound):
                id = "epdemo.demo"
                source = bounds.Source("demo", "Corollary 0")
                tightness = bounds.Tightness.QUALITATIVE
            """
        ),
        encoding="utf-8",
    )
    (site / "epdemo" / "trainer.py").write_text(
        "import dataclasses\nfrom verify import trainers\n"
        "trainers.register(dataclasses.replace(trainers.get('masked_shallow'), name='epdemo'))\n",
        encoding="utf-8",
    )
    info = site / "epdemo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: epdemo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[maskverify.bounds]\ndemo = epdemo.bound\n\n[maskverify.trainers]\ndemo = epdemo.trainer\n"
    )
    env = {"PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    listed = _python(["-m", "verify", "list"], env)
    assert listed.returncode == 0 and "epdemo.demo\n    source:    demo, Corollary 0" in listed.stdout
    known = _python(["-c", "from verify import trainers; print(sorted(trainers.trainers()))"], env)
    assert known.returncode == 0 and "'epdemo'" in known.stdout, known.stderr
    # a broken entry point is named in the error
    (site / "epdemo" / "bound.py").write_text("raise RuntimeError('boom')\n", encoding="utf-8")
    broken = _python(["-c", "import bounds"], env)
    assert broken.returncode != 0
    assert "entry point maskverify.bounds:demo = 'epdemo.bound' cannot be loaded" in broken.stderr


def test_package_discovery_imports_every_public_module_in_name_order(tmp_path, monkeypatch):
    """A new module in a discovered package registers without being named anywhere."""
    pkg = tmp_path / "discodemo"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("SEEN = []\n", encoding="utf-8")
    for name in ("zeta", "alpha", "_private", "skipped"):
        (pkg / f"{name}.py").write_text(
            f"from discodemo import SEEN\nSEEN.append({name!r})\n", encoding="utf-8"
        )
    monkeypatch.syspath_prepend(str(tmp_path))
    import discodemo

    assert import_package("discodemo", skip=("skipped",)) == ["discodemo.alpha", "discodemo.zeta"]
    assert discodemo.SEEN == ["alpha", "zeta"]


def test_the_package_modules_are_discovered():
    """Every paper module of bounds/ and verify/trainers/ registered without an import list."""
    names = {b.split(".")[0] for b in bounds.registry()}
    assert {"caron2023", "huang2022", "liao2022", "qin2023"} <= names
    assert {"masked_shallow", "node_scaling", "rmda_group_lasso", "shifted_relu"} <= set(
        trainers.trainers()
    )
    with pytest.raises(PluginError, match="no such file"):
        import_plugin("does_not_exist.py", Path("/nonexistent"))
