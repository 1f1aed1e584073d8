"""Reports rendered from a small synthetic result store: content of HTML, Markdown and JUnit."""

from __future__ import annotations

import itertools
import json
import math
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import reports
from reports.figures import case_figures
from reports.figures.curves import loss_curve_figures
from reports.store import load_results

BOUND = "liao2022.theorem1"
OTHER = "toy.noiseless"
ROUNDS = 40
REPS = 3
NAN = math.nan


def _key(p: int, tau: int, xi: float) -> str:
    return f"p{p}-tau{tau}-xi{xi:g}"


def _label(p: int, tau: int, xi: float) -> str:
    return f"p={p} tau={tau} xi={xi:g}"


def _floor(p: int, tau: int, xi: float) -> float:
    return 1e-3 * tau / p * (1 - xi)


def _verdict(
    case: str,
    bound: str,
    check: str,
    kind: str,
    key: str,
    label: str,
    params: dict,
    role: str,
    status: str,
    observed: float,
    predicted: float,
    *,
    quantity: str = "",
    detail: str = "",
    rate: float = NAN,
    floor: float = NAN,
    p_adj: float = 0.5,
) -> dict:
    ci = (observed * 0.8, observed * 1.2) if math.isfinite(observed) else (NAN, NAN)
    return {
        "case": case,
        "bound": bound,
        "check": check,
        "kind": kind,
        "point_key": key,
        "label": label,
        "params_json": json.dumps(params, sort_keys=True),
        "role": role,
        "status": status,
        "observed": observed,
        "ci_low": ci[0],
        "ci_high": ci[1],
        "predicted": predicted,
        "allowed": predicted * 1.5 if math.isfinite(predicted) else NAN,
        "slack": observed / predicted if predicted else NAN,
        "p_value": 0.4,
        "p_adjusted": NAN if role == "calibration" else p_adj,
        "detail": detail,
        "quantity": quantity or kind,
        "predicted_rate": rate,
        "predicted_floor": floor,
    }


def write_store(
    root: Path,
    name: str = "toy",
    *,
    fail: bool = True,
    ps: tuple[int, ...] = (1, 2, 4),
    taus: tuple[int, ...] = (1, 2),
) -> Path:
    """A result store for one case with a p × tau grid at xi = 0.5, in the runner's format.

    Verdicts: envelope, rate and floor per point for BOUND (checkerboard calibration split),
    envelope per point for OTHER, one trend row; the floor at (p=2, tau=2) fails if ``fail`` (and
    the calibration row at the first point),
    the point (p=max, tau=max) is outside the hypotheses, one rate row is inconclusive.
    """
    case_dir = root / name
    case_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    xi, rho = 0.5, 0.9
    rows, keys = [], []
    for i, (p, tau) in enumerate(itertools.product(ps, taus)):
        key, label = _key(p, tau, xi), _label(p, tau, xi)
        params = {"p": p, "tau": tau, "xi": xi}
        keys.append(key)
        k = np.arange(ROUNDS + 1)
        B = _floor(p, tau, xi)
        reps = []
        for r in range(REPS):
            loss = 0.5 * rho**k * (1 + 0.05 * rng.standard_normal()) + B * (1 + 0.1 * rng.random())
            if (p, tau) == (ps[0], taus[0]) and r == 0:
                loss[30:] = np.nan  # one diverged repetition
            reps.append(
                {
                    "case": name,
                    "point_key": key,
                    "rep": r,
                    "m": 1000,
                    "kappa": 1.0,
                    "eta": 0.05,
                    "rounds": ROUNDS,
                    "dtype": "float64",
                    "xi": xi,
                    "p": p,
                    "tau": tau,
                    "scheme": "bernoulli",
                    "loss": loss.tolist(),
                    "diverged_round": 30.0 if (p, tau) == (ps[0], taus[0]) and r == 0 else -1.0,
                    "lambda_min_H0": 0.1,
                    "lambda_min_Hend": 0.09,
                    "max_movement": 0.01,
                    "wall_time_s": 0.1,
                    "code_version": "abc123",
                    "python": "3.11",
                    "numpy": "2.0",
                    "platform": "Linux",
                    "git_commit": "deadbee",
                }
            )
        pd.DataFrame(reps).to_parquet(case_dir / f"{key}.parquet", index=False)
        role = "calibration" if i % 2 == 0 else "held-out"
        outside = (p, tau) == (ps[-1], taus[-1])
        status = "outside-hypotheses" if outside else "pass"
        detail = "eta exceeds the step-size hypothesis eta <= 1/(tau m)" if outside else ""
        observed_floor = B * 1.05
        floor_status = status
        if fail and (p, tau) == (2, 2):
            observed_floor, floor_status, detail = B * 3, "fail", "tail mean above the limit"
        if fail and i == 0:  # a failing calibration row: shown, never counted
            observed_floor, floor_status, detail = B * 2, "fail", "calibration residual"
        common = dict(case=name, key=key, label=label, params=params, role=role)
        rows += [
            _verdict(
                bound=BOUND,
                check="envelope",
                kind="envelope",
                status=status,
                observed=0.5 * B,
                predicted=B,
                rate=rho,
                floor=B,
                detail=detail,
                **common,
            ),
            _verdict(
                bound=BOUND,
                check="rate",
                kind="rate",
                observed=0.11,
                predicted=-math.log(rho),
                status="inconclusive" if i == 1 else status,
                detail="no linear phase" if i == 1 else detail,
                **common,
            ),
            _verdict(
                bound=BOUND,
                check="floor",
                kind="floor",
                status=floor_status,
                observed=observed_floor,
                predicted=B,
                detail=detail,
                **common,
            ),
            _verdict(
                bound=OTHER,
                check="envelope",
                kind="envelope",
                status="pass",
                observed=0.4 * B,
                predicted=B,
                rate=0.95,
                floor=B,
                **common,
            ),
        ]
    trend = {
        "case": name,
        "key": "trend:p:tau=1",
        "label": "floor vs p (tau=1 xi=0.5)",
        "params": {"tau": 1, "xi": xi},
        "role": "test",
    }
    rows.append(
        _verdict(
            bound=BOUND,
            check="trend",
            kind="trend",
            status="pass",
            observed=-0.9,
            predicted=NAN,
            quantity="slope",
            detail="non-increasing in p",
            **trend,
        )
    )
    pd.DataFrame(rows).to_parquet(case_dir / "verdicts.parquet", index=False)
    meta = {
        "name": name,
        "description": "synthetic case",
        "path": f"cases/{name}.toml",
        "trainer": "masked",
        "bounds": [BOUND, OTHER],
        "repetitions": REPS,
        "false_alarm": 0.01,
        "grid": {"p": list(ps), "tau": list(taus)},
        "points": keys,
        "data_params": {"n": 16, "d": 8, "lambda0": 0.1, "lambda_max": 2.0},
        "provenance": {
            BOUND: {
                "id": BOUND,
                "source": "arXiv:2112.02668, Theorem 1",
                "tightness": "upper bound",
                "requirements_example": {"eta_max": 0.1},
                "trends": ["floor non-increasing in p"],
            },
            OTHER: {"id": OTHER, "source": "synthetic", "tightness": "exact", "trends": []},
        },
        "calibration": {
            BOUND: {
                "floor": {
                    "constant": 1.2e-3,
                    "exponents": {"p": -1.0, "tau": 1.0},
                    "calibrated_exponents": ["tau"],
                    "log_residual_sd": 0.1,
                    "calibration_points": 3,
                    "dof": 1,
                },
                "rate": {"error": "too few calibration points"},
            },
        },
        "environment": {
            "python": "3.11.9",
            "numpy": "2.0.0",
            "scipy": "1.13",
            "pandas": "2.2",
            "platform": "Linux-x86_64",
            "machine": "x86_64",
            "git_commit": "deadbee",
            "date": "2025-01-01T00:00:00+00:00",
            "seed_entropy": "12345",
        },
        "wall_time_s": 12.5,
        "perturb": {},
    }
    (case_dir / "case.json").write_text(json.dumps(meta), encoding="utf-8")
    return case_dir


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[dict[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.imgs.append(dict(attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse_html(path: Path) -> _Collector:
    parser = _Collector()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("results")
    write_store(root)
    return reports.render(root)


def test_render_writes_every_format_to_results_dir(rendered: dict[str, Path]) -> None:
    assert set(rendered) == {"html", "md", "junit"}
    assert rendered["html"].name == "report.html" and rendered["md"].name == "report.md"
    assert rendered["junit"].name == "junit.xml"
    assert all(
        p.parent == rendered["html"].parent and p.stat().st_size > 0 for p in rendered.values()
    )


def test_html_content(rendered: dict[str, Path]) -> None:
    page = _parse_html(rendered["html"])
    text = " ".join(page.text)
    assert BOUND in text and OTHER in text
    # 1 loss-curve page (6 points), 1 floor figure (BOUND; OTHER has no floor rows),
    # heatmaps for BOUND's envelope/floor/rate and OTHER's envelope, 1 rate scatter.
    assert len(page.imgs) == 7
    assert all((img["src"] or "").startswith("data:image/png;base64,iVBOR") for img in page.imgs)
    assert "FAIL" in text and "tail mean above the limit" in text
    assert "eta exceeds the step-size hypothesis" in text  # provenance: outside hypotheses
    assert "too few calibration points" in text and "arXiv:2112.02668, Theorem 1" in text
    assert "seed_entropy" in text and "12345" in text and "deadbee" in text
    assert "No floor checks were run for this bound." in text  # OTHER's floor figure skipped
    html = rendered["html"].read_text(encoding="utf-8")
    # the failure shows in the failures table and in the full verdict table, coloured as fail
    failing = [row for row in html.split("<tr") if 'class="row-fail"' in row]
    assert len(failing) == 2
    assert all("tail mean above the limit" in row and 'class="st-fail"' in row for row in failing)
    calib = next(row for row in html.split("<tr") if "calibration residual" in row)
    assert 'class="st-calibration"' in calib and "st-fail" not in calib


def test_junit_counts(rendered: dict[str, Path]) -> None:
    root = ET.parse(rendered["junit"]).getroot()
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {f"toy.{BOUND}", f"toy.{OTHER}"}
    main = suites[f"toy.{BOUND}"]
    # 6 points x 3 checks + 1 trend, minus the 3 calibration points' 9 rows
    assert main.get("tests") == "10" and len(main.findall("testcase")) == 10
    assert main.get("failures") == "1" and len(main.findall("testcase/failure")) == 1
    # the outside point (held-out: i = 5) has 3 rows, plus one inconclusive rate row
    assert main.get("skipped") == "4" and len(main.findall("testcase/skipped")) == 4
    failure = main.find("testcase/failure")
    assert failure is not None
    message = failure.get("message") or ""
    assert "observed=" in message and "predicted=" in message and "allowed=" in message
    assert "p_adjusted=" in message and "CI=[" in message
    failed_case = main.find("testcase[failure]")
    assert failed_case is not None
    assert failed_case.get("classname") == f"toy.{BOUND}.floor"
    assert failed_case.get("name") == "p=2 tau=2 xi=0.5"
    assert "calibration residual" not in rendered["junit"].read_text(encoding="utf-8")
    skips = [s.get("message") or "" for s in main.findall("testcase/skipped")]
    assert sum(s.startswith("outside hypotheses: eta exceeds") for s in skips) == 3
    assert sum(s.startswith("inconclusive: no linear phase") for s in skips) == 1
    other = suites[f"toy.{OTHER}"]
    assert (other.get("tests"), other.get("failures"), other.get("skipped")) == ("3", "0", "0")
    assert root.get("tests") == "13" and root.get("failures") == "1"


def test_markdown_lists_the_failure(rendered: dict[str, Path]) -> None:
    md = rendered["md"].read_text(encoding="utf-8")
    assert "FAIL" in md.splitlines()[0]
    assert "| toy | FAIL | 8 | 1 | 3 | 1 | 12 |" in md  # pass, fail, outside, inconclusive, calib
    fail_rows = [line for line in md.splitlines() if "tail mean above the limit" in line]
    assert len(fail_rows) == 1 and "p=2 τ=2" in fail_rows[0] and "| floor |" in fail_rows[0]
    assert "calibration residual" not in md  # a failing calibration row is not counted
    assert "](" not in md  # link-free


def test_store_without_failures_renders_pass(tmp_path: Path) -> None:
    write_store(tmp_path, fail=False)
    out = reports.render(tmp_path, tmp_path / "out", formats=("md", "junit"))
    assert set(out) == {"md", "junit"} and out["md"].parent == tmp_path / "out"
    assert out["md"].read_text(encoding="utf-8").splitlines()[0].endswith("PASS")
    root = ET.parse(out["junit"]).getroot()
    assert root.get("failures") == "0" and not root.findall(".//failure")


def test_html_pass_badge_and_skipped_figures(tmp_path: Path) -> None:
    write_store(tmp_path, fail=False, ps=(2,), taus=(1, 2, 4))
    out = reports.render(tmp_path, formats=["html"])
    page = _parse_html(out["html"])
    text = " ".join(page.text)
    assert "maskverify report PASS" in " ".join(text.split())
    assert "Skipped: neither p nor τ varies" not in text  # tau varies
    cases = load_results(tmp_path)
    blocks = case_figures(cases[0])
    floor = [b for b in blocks if "floor vs p and τ" in b.title]
    assert len(floor) == 2 and not floor[0].skipped and floor[1].skipped
    assert len(page.imgs) == sum(not b.skipped for b in blocks)


def test_no_p_or_tau_variation_skips_floor_figure(tmp_path: Path) -> None:
    write_store(tmp_path, ps=(2,), taus=(1,))
    blocks = case_figures(load_results(tmp_path)[0])
    floor = next(b for b in blocks if b.title.endswith(f"{BOUND}: floor vs p and τ"))
    assert floor.skipped and "neither p nor τ varies" in floor.caption


def test_many_points_are_split_over_balanced_pages(tmp_path: Path) -> None:
    write_store(tmp_path, ps=(1, 2, 4, 8, 16), taus=(1, 2, 3, 4, 5))
    blocks = loss_curve_figures(load_results(tmp_path)[0])
    assert [b.title[-5:] for b in blocks] == ["(1/2)", "(2/2)"]
    assert not any(b.skipped for b in blocks)


def test_bad_input(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        reports.render(tmp_path / "missing")
    with pytest.raises(ValueError, match="unknown report format"):
        reports.render(tmp_path, formats=("pdf",))


def test_case_without_verdicts_or_points_still_renders(tmp_path: Path) -> None:
    case_dir = write_store(tmp_path / "results")
    for f in case_dir.glob("*.parquet"):
        f.unlink()
    out = reports.render(tmp_path / "results")
    assert "NO VERDICTS" in out["md"].read_text(encoding="utf-8").splitlines()[0]
    root = ET.parse(out["junit"]).getroot()
    assert [s.get("tests") for s in root.findall("testsuite")] == ["0", "0"]
    text = " ".join(_parse_html(out["html"]).text)
    assert "No loss curves are stored for this case." in text and BOUND in text
