"""Conformance of user trainers (``python -m verify conform``) and ``run --trainer``.

The shipped implementations must conform, every broken one must be rejected (negative
controls of the conformance test), bad input is one line and exit code 2, and the stated
power is the power the test has.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from examples.trainers.broken import BROKEN
from verify.cli import main
from verify.conform import min_shift, repetitions_needed, two_sample
from verify.conform import tested_rounds as rounds_of

from .conftest import ROOT, write_case

NUMPY = str(ROOT / "examples" / "trainers" / "numpy_masked.py") + ":train"
BROKEN_FILE = str(ROOT / "examples" / "trainers" / "broken.py")
#: the case-level tables beside the point files of a results folder
TABLES = ("conformance", "verdicts")

#: the smoke case's data (n = 16 on the sphere in d = 16) on a reduced grid: xi != 0.5 so
#: that ``drop_rate`` differs, p = 4 so that ``summing``/``mean_over_all`` differ
CASE = """
name = "conform_test"
bounds = ["liao2022.theorem1"]
repetitions = 16
false_alarm = {false_alarm}
seed = {seed}
[data]
n = 16
d = 16
[model]
m = 400
scaling = "{scaling}"
[training]
eta = 0.05
rounds = {rounds}
[masking]
xi = 0.75
[grid]
xi = [0.25, 0.75]
p = [1, 4]
tau = {tau}
[checks.floor]
tail = 50
"""


def make_case(
    path: Path, seed: int, scaling: str = "inverted", rounds=120, tau="[1]", false_alarm=0.001
) -> Path:
    """The test case; its budget 0.001 keeps a correct trainer's false rejection at most
    0.1% per test (the broken ones are rejected at Holm p <= 4e-5 at 16 repetitions)."""
    text = CASE.format(seed=seed, scaling=scaling, rounds=rounds, tau=tau, false_alarm=false_alarm)
    return write_case(path / f"conform_{scaling}_{rounds}.toml", text)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, global_seed):
    """One case file and one results folder per module: the reference trains once."""
    root = tmp_path_factory.mktemp("conform")
    return make_case(root, global_seed), root / "results"


def conform(case: Path, out: Path, spec: str, *extra: str) -> int:
    args = ["conform", str(case), "--trainer", spec, "--out", str(out), "--no-progress"]
    return main([*args, *extra])


def test_numpy_example_conforms(workspace, capsys):
    case, out = workspace
    assert conform(case, out, NUMPY) == 0
    text = capsys.readouterr().out
    assert "CONFORMING" in text and "power: a common shift" in text
    assert (out / "conform_test@numpy_masked.train" / "conformance.parquet").is_file()


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_implementations_are_rejected(workspace, capsys, name):
    case, out = workspace
    assert conform(case, out, f"{BROKEN_FILE}:{name}") == 1
    text = capsys.readouterr().out
    assert "NOT CONFORMING" in text and "DIFFERS" in text


def test_torch_example_conforms(tmp_path, global_seed, capsys):
    pytest.importorskip("torch", reason="the PyTorch example needs the optional extra 'torch'")
    case = make_case(tmp_path, global_seed, rounds=100, tau="[1]")
    spec = str(ROOT / "examples" / "trainers" / "torch_masked.py") + ":train"
    assert conform(case, tmp_path / "r", spec, "--repetitions", "12") == 0, capsys.readouterr()


def test_output_convention_reaches_the_trainer(tmp_path, global_seed, capsys):
    """Under ``scaling = "paper"`` the example follows the paper's convention and conforms;
    an implementation that ignores ``params["scaling"]`` (always inverted) is rejected."""
    case = make_case(tmp_path, global_seed, scaling="paper", rounds=100, tau="[1]")
    ignoring = tmp_path / "ignoring.py"
    ignoring.write_text(
        "from examples.trainers.numpy_masked import train as _train\n"
        "def train(params, X, y, seeds):\n"
        "    return _train({**params, 'scaling': 'inverted'}, X, y, seeds)\n"
    )
    out = tmp_path / "r"
    assert conform(case, out, NUMPY, "--repetitions", "12") == 0, capsys.readouterr().out
    assert conform(case, out, f"{ignoring}:train", "--repetitions", "12") == 1


@pytest.mark.parametrize(
    "body, message",
    [
        ("def train(params, X, y, seeds):\n    return [[1.0, 2.0]]\n", "returned shape"),
        (
            "import numpy as np\n"
            "def train(params, X, y, seeds):\n"
            "    out = np.ones((len(seeds), params['rounds'] + 1))\n"
            "    out[:, 5] = np.nan\n"
            "    return out\n",
            "non-finite loss",
        ),
        ("def train(params, X, y, seeds):\n    raise RuntimeError('boom')\n", "boom"),
        ("import no_such_module_here\n", "cannot import"),
        ("x = 1\n", "no callable 'train'"),
    ],
)
def test_bad_trainers_are_one_line_exit_2(tmp_path, global_seed, capsys, body, message):
    case = make_case(tmp_path, global_seed, rounds=20, tau="[1]")
    path = tmp_path / "user.py"
    path.write_text(body)
    assert conform(case, tmp_path / "r", f"{path}:train", "--repetitions", "2") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --trainer") and message in err[0]


@pytest.mark.parametrize(
    "spec", ["no_such_module:train", "examples/trainers/missing.py:train", "nocolon", "a.py:"]
)
def test_unusable_specs_are_exit_2(workspace, capsys, spec):
    case, out = workspace
    assert conform(case, out, spec) == 2
    assert capsys.readouterr().err.startswith("error: --trainer")


def test_only_masked_cases_take_a_user_trainer(tmp_path, capsys):
    case = ROOT / "cases" / "caron2023_node_scaling.toml"
    assert main(["run", str(case), "--trainer", NUMPY, "--out", str(tmp_path)]) == 2
    assert "stands in for" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_run_with_a_user_trainer_stores_under_its_name_and_resumes(workspace, capsys):
    """The claim checks on the user's trainer; a module spec works as well as a file."""
    case, out = workspace
    args = ["run", str(case), "--out", str(out / "run"), "--no-progress", "--no-report"]
    first = main([*args, "--trainer", "examples.trainers.numpy_masked:train"])
    text = capsys.readouterr().out
    assert first in (0, 1) and "conform_test@examples.trainers.numpy_masked.train" in text
    assert "[4 trained, 0 reused" in text
    assert main([*args, "--trainer", "examples.trainers.numpy_masked:train"]) == first
    assert "[0 trained, 4 reused" in capsys.readouterr().out


def test_process_executor_gives_the_serial_numbers(tmp_path, global_seed):
    import pandas as pd

    case = make_case(tmp_path, global_seed, rounds=20, tau="[1]")
    frames = []
    for executor in ("serial", "process"):
        out = tmp_path / executor
        args = ["--repetitions", "3", "--executor", executor, "--jobs", "2"]
        assert conform(case, out, NUMPY, *args) in (0, 1)
        folder = out / "conform_test@numpy_masked.train"
        files = sorted(f for f in folder.glob("*.parquet") if f.stem not in TABLES)
        frames.append(pd.concat([pd.read_parquet(f) for f in files]))
    serial, process = frames
    assert len(serial) == 4 * 3
    for a, b in zip(serial["loss"], process["loss"], strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_fresh_process_resolves_a_user_trainer_by_name(tmp_path):
    """What a spawned (Dask) worker does: the name alone re-imports the user's callable."""
    from verify.user_trainer import make_trainer

    name = make_trainer(NUMPY).name
    code = f"from verify.user_trainer import resolve; print(resolve({name!r}).name)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == name


@pytest.mark.parametrize("rule", ["reproducible", "order_independent", "divergence", "outputs"])
def test_the_adapter_meets_the_trainer_contract(rule):
    """The NumPy example behind the adapter obeys the rules the suite relies on (its memory
    is its own business: the estimate is the reference trainer's)."""
    from verify.testing import CHECKS, tiny_params
    from verify.user_trainer import make_trainer

    trainer = make_trainer(NUMPY)
    CHECKS[rule](trainer, tiny_params(trainer))


def test_seeds_are_independent_of_the_reference_streams():
    from verify.user_trainer import REFERENCE_TAG, SEED_TAG, user_seeds

    rngs = [np.random.default_rng(np.random.SeedSequence([1, 2, r])) for r in range(4)]
    mine, ref = user_seeds(rngs), user_seeds(rngs, REFERENCE_TAG)
    assert SEED_TAG != REFERENCE_TAG and len(set(mine) | set(ref)) == 8
    assert all(0 <= s < 2**63 for s in mine)
    again = [np.random.default_rng(np.random.SeedSequence([1, 2, r])) for r in range(4)]
    assert user_seeds(again) == mine  # reproducible


def test_stated_power_is_the_power(rng):
    """At the stated smallest shift the t-test rejects in about 90% of draws; at half of
    it, far less often (the statement is neither loose nor optimistic)."""
    sd, n, alpha = 0.3, 16, 0.01
    shift = min_shift(sd, n, n, alpha)
    for factor, low, high in ((1.0, 0.87, 0.93), (0.5, 0.0, 0.5)):
        delta = math.log1p(shift) * factor
        a = rng.normal(delta, sd, (4000, n))
        b = rng.normal(0.0, sd, (4000, n))
        p = stats.ttest_ind(a, b, axis=1, equal_var=False).pvalue
        assert low <= (p <= alpha).mean() <= high
    need = repetitions_needed(sd, alpha)
    assert min_shift(sd, need, need, alpha) <= 0.2 < min_shift(sd, need - 1, need - 1, alpha)


def test_tested_rounds_do_not_depend_on_which_sample_is_which(rng):
    decay = np.exp(-0.05 * np.arange(101))
    a = 10 * decay * rng.lognormal(0, 0.2, (8, 1)) + 0.1
    b = 10 * decay * rng.lognormal(0, 0.2, (8, 1)) + 0.1
    rounds = rounds_of(a, b, 25)
    assert rounds == rounds_of(b, a, 25)
    assert 1 <= rounds["early"] < rounds["mid"] < 100


def test_two_sample_sees_location_and_spread(rng):
    base = rng.normal(0, 0.2, 30)
    assert two_sample(base + 0.5, rng.normal(0, 0.2, 30))[0] < 1e-6  # location
    assert two_sample(base * 5, rng.normal(0, 0.2, 30))[1] < 1e-3  # spread
    p_loc, p_spread, ratio, low, high, sd_ratio = two_sample(base, rng.normal(0, 0.2, 30))
    assert p_loc > 1e-3 and p_spread > 1e-3 and low < ratio < high


@pytest.mark.slow
def test_conformance_false_alarm_rate_over_many_seeds(tmp_path, global_seed):
    """``tox -e calibrate``: the reference trainer against itself with independent seeds
    (``--trainer verify.user_trainer:reference``) over 100 case seeds (data, initialisations
    and masks all change), 16 repetitions each: the family-wise false-alarm rate of
    ``conform`` is at most its budget (1%)."""
    from verify.case import load
    from verify.conform import conform as run_conform

    alarms = 0
    for seed in range(global_seed, global_seed + 100):
        case = load(make_case(tmp_path, seed, rounds=60, false_alarm=0.01))
        result = run_conform(
            case, "verify.user_trainer:reference", tmp_path / f"r{seed}", 16, show_progress=False
        )
        if not result.conforms:
            alarms += 1
            print(
                f"seed {seed}: " + "; ".join(f"{c.label} {c.statistic}" for c in result.differing)
            )
    print(f"false alarms: {alarms} / 100")
    assert stats.binomtest(alarms, 100, 0.01, alternative="greater").pvalue > 0.01
