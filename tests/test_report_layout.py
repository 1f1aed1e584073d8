"""Reports that read cleanly: panel titles are formatted grid values that fit their panels,
axes show the data, verdict details are reachable, and the HTML renders in a browser with
every figure loaded (headless Chromium, where installed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

import reports
from reports.figures import case_figures
from reports.figures.common import fit_titles, new_figure, title_overflow
from reports.figures.floor import floor_figures
from reports.params import short_label
from reports.store import load_results
from tests.conftest import write_case
from verify.case import load
from verify.runner import run_case

#: a p x tau grid and two points without masking noise (xi = 1: predicted floor exactly 0)
CASE = """
name = "layout"
bounds = ["liao2022.theorem1"]
repetitions = 2
[data]
n = 8
d = 8
[model]
m = 200
[training]
eta = 0.1
rounds = 200
[masking]
xi = 0.5
[grid]
p = [1, 2, 4]
tau = [1, 2, 4]
[[points]]
xi = 1.0
[[points]]
xi = 1.0
tau = 2
[checks.envelope]
[checks.floor]
tail = 50
"""
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("layout")
    case = load(write_case(root / "layout.toml", CASE))
    out = root / "results"
    run_case(case, out, show_progress=False)
    # 200 rounds do not reach the rounding-level floor at xi = 1 (inconclusive); store one
    # such point as the smoke case's 300 rounds do (7.5e-10 against a predicted 0)
    path = out / "layout" / "verdicts.parquet"
    v = pd.read_parquet(path)
    row = (v["kind"] == "floor") & v["label"].str.contains("tau=1 xi=1.0")
    assert row.sum() == 1
    v.loc[row, ["observed", "ci_low", "ci_high", "predicted"]] = [7.5e-10, 1e-11, 1.5e-9, 0.0]
    v.loc[row, ["status", "detail"]] = ["pass", "predicted floor 0: tested against floor_atol"]
    v.to_parquet(path, index=False)
    return out


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """Every figure saved while the test runs (its last layout is the one saved)."""
    figures: list[Figure] = []
    save = Figure.savefig

    def record(self: Figure, *args, **kwargs):
        figures.append(self)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    return figures


def test_labels_are_formatted_values_with_greek_letters():
    params = {"xi": 0.5, "p": 4, "tau": 2, "eta": 0.0123456, "kappa": 1.0, "gamma": 1e-5}
    assert short_label(params, params) == "ξ=0.5 p=4 τ=2 κ=1 η=0.0123 γ=1e-5"


def test_panel_titles_are_grid_values_and_fit_their_panels(results: Path, drawn: list[Figure]):
    (case,) = load_results(results)
    blocks = case_figures(case)
    assert len(drawn) == sum(not b.skipped for b in blocks) >= 4
    titles = []
    for fig in drawn:
        for ax in fig.axes:
            assert title_overflow(ax) <= 0, f"title {ax.get_title()!r} wider than its panel"
            titles.append(ax.get_title())
    points = {f"ξ=0.5 p={p} τ={t}" for p in (1, 2, 4) for t in (1, 2, 4)} | {"ξ=1 p=1 τ=1"}
    assert points <= set(titles)  # the loss-curve panels: values, never keys or seeds
    assert not [t for t in titles if re.search(r"[0-9a-f]{12}|seed|\d{6}", t)]


def test_fit_titles_shrinks_then_wraps_a_title_wider_than_its_panel():
    fig = new_figure(4.0, 2.0)
    axes = fig.subplots(1, 3)
    long = "ξ=0.333 p=16 τ=4 m=16000 κ=1 η=0.05 scheme=bernoulli dtype=float64"
    axes[0].set_title(long, fontsize=8)
    axes[1].set_title("p=1", fontsize=8)
    fig.draw_without_rendering()
    assert title_overflow(axes[0]) > 0 and title_overflow(axes[1]) <= 0  # the test can fail
    fit_titles(fig)
    fig.draw_without_rendering()
    assert all(title_overflow(ax) <= 0 for ax in axes)
    assert axes[0].get_title().split() == long.split() and "\n" in axes[0].get_title()
    assert axes[1].get_title() == "p=1" and axes[1].title.get_fontsize() == 8


def test_floor_axis_shows_the_data_and_names_the_zero_floor_points(results, drawn):
    """The xi = 1 points (predicted floor 0, measured near rounding) are named in the
    caption instead of stretching the log axis over many decades."""
    (case,) = load_results(results)
    (block,) = floor_figures(case, "liao2022.theorem1")
    assert "Not shown, predicted floor 0" in block.caption
    assert "ξ=1 p=1 τ=1 (observed 7.5e-10)" in block.caption
    floors = case.verdicts[case.verdicts["kind"] == "floor"]
    zero, shown = floors[floors["predicted"] == 0], floors[floors["predicted"] > 0]
    assert len(zero) == 2 and len(shown) == 9
    low, high = drawn[0].axes[0].get_ylim()
    assert low <= shown["ci_low"].min() and high >= shown["ci_high"].max()
    assert low > 100 * 7.5e-10  # the point at rounding level does not set the range


def test_long_verdict_details_are_folded_and_complete(results: Path):
    html = reports.render(results, formats=["html"])["html"].read_text(encoding="utf-8")
    (case,) = load_results(results)
    long = [d for d in case.verdicts["detail"] if len(d) > 90]
    assert long, "the tiny case has no long verdict detail"
    for detail in long:
        escaped = detail.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        escaped = escaped.replace('"', "&quot;").replace("'", "&#x27;")
        assert f"</summary>{escaped}</details>" in html
    assert html.count('<td class="detail">') >= len(case.verdicts)  # every row has its detail


#: appended to a copy of the report: after loading, record what the browser shows
PROBE = """<script>
window.addEventListener('load', () => {
  const images = [...document.images];
  const out = document.createElement('pre');
  out.id = 'probe';
  out.textContent = JSON.stringify({
    images: images.length,
    broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt),
    overflow: [...document.querySelectorAll('.scroll')].map(d => d.scrollWidth - d.clientWidth),
    page: document.documentElement.scrollWidth - document.documentElement.clientWidth,
  });
  document.body.appendChild(out);
});
</script>"""


def _browse(page: Path, profile: Path) -> dict:
    """Load ``page`` in headless Chromium (1400 px wide) and return the probe's findings."""
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--window-size=1400,1000",
            "--virtual-time-budget=10000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    found = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert found, f"no probe output (exit {proc.returncode}): {proc.stderr[-500:]}"
    return json.loads(found.group(1).replace("&quot;", '"'))


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium_with_every_figure(results: Path, tmp_path: Path):
    html = reports.render(results, tmp_path, formats=["html"])["html"].read_text(encoding="utf-8")
    expected = html.count("<img ")
    page = tmp_path / "probed.html"
    page.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    found = _browse(page, tmp_path / "profile")
    assert found["images"] == expected >= 4 and found["broken"] == []
    assert found["page"] <= 0 and all(o <= 0 for o in found["overflow"]), found
    # negative control: a figure whose data does not decode is reported as broken
    bad = html.replace("base64,iVBOR", "base64,AAAA", 1)
    page.write_text(bad.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    assert len(_browse(page, tmp_path / "profile")["broken"]) == 1
