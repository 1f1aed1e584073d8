"""The declared result schema: written with the results, read by evaluation and reports;
the quantities table; structured verdict fields."""

import json

import numpy as np
import pandas as pd
import pytest

from reports.store import load_case
from verify.case import load
from verify.checks.quantities import QUANTITIES, quantity
from verify.evaluate import evaluate
from verify.grid import expand
from verify.result_schema import (
    BOOKKEEPING,
    Outputs,
    ResultSchema,
    SchemaError,
    declared_outputs,
    outputs_of,
)
from verify.runner import run_case
from verify.store import read_points
from verify.trainers.outputs import RunOutput, has_diverged

from .conftest import TINY, write_case


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("schema")
    case = load(write_case(tmp / "c.toml", TINY))
    return run_case(case, tmp / "r", show_progress=False)


def test_case_json_declares_parameters_outputs_and_bookkeeping(tiny_run):
    meta = json.loads((tiny_run.directory / "case.json").read_text())
    schema = ResultSchema.from_json(meta["schema"])
    assert schema.trainer == "masked_shallow"
    assert "loss" in schema.curves and "diverged_round" in schema.scalars
    assert set(schema.grid) == set(tiny_run.case.grid)
    assert set(schema.grid) <= set(schema.parameters)
    assert not set(schema.parameters) & set(schema.outputs)
    assert not set(schema.parameters) & set(BOOKKEEPING)  # a data key `seed` is bookkeeping
    # the reports take the parameters from the schema, not from column names or types
    assert load_case(tiny_run.directory).param_columns == [
        c for c in schema.parameters if c in load_case(tiny_run.directory).points.columns
    ]


def test_evaluation_refuses_a_table_without_declared_outputs(tiny_run):
    points = expand(tiny_run.case)
    results = read_points(tiny_run.directory, [p.key for p in points])
    assert declared_outputs(results).curves == ("loss",)
    bare = pd.DataFrame(results.to_dict("list"))  # same columns, no declaration
    with pytest.raises(SchemaError, match="declares no outputs"):
        evaluate(tiny_run.case, points, bare, {})


def test_repetitions_must_report_the_same_outputs():
    a = RunOutput({"loss": np.ones(3)}, {"diverged_round": -1.0})
    b = RunOutput({"loss": np.ones(3)}, {})
    assert outputs_of([a, a]) == Outputs(("loss",), ("diverged_round",))
    with pytest.raises(SchemaError, match="repetition 1"):
        outputs_of([a, b])
    with pytest.raises(SchemaError, match="clash"):
        outputs_of([RunOutput({"seed": np.ones(2)})])
    with pytest.raises(SchemaError, match="both as curves and as scalars"):
        Outputs.merge([Outputs(("x",), ()), Outputs((), ("x",))])


def test_divergence_rule_is_shared():
    assert has_diverged(float("nan"), 1.0) and has_diverged(2e6, 1.0)
    assert not has_diverged(5e5, 1.0)
    assert has_diverged(np.array([1.0, np.inf, 3e6]), 1.0).tolist() == [False, True, True]


def test_every_quantity_has_a_side_an_observer_and_a_perturbation_key():
    for q in QUANTITIES.values():
        assert q.side in ("upper", "lower") and callable(q.observer)
        assert q.alternative == ("greater" if q.side == "upper" else "less")
    assert quantity("rate").prediction == "decay"
    with pytest.raises(KeyError, match="known"):
        quantity("speed")


def test_scaling_and_trend_verdicts_carry_structured_fields(smoke_run):
    _, run = smoke_run
    v = run.evaluation.frame()
    trend = v[v["kind"] == "trend"]
    assert len(trend) and (trend["parameter"] != "").all() and (trend["statistic"] == "floor").all()
    assert (trend["group"] != "").all()
    per_point = v[v["kind"].isin(["floor", "rate", "envelope"])]
    assert (per_point["parameter"] == "").all()
