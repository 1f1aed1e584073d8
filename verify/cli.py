"""Command line: ``python -m verify run | list | report | mutate | conform``.

Exit codes of ``run``: 0 every counted check passes (outside-hypotheses allowed),
1 some check fails, 2 bad input (nothing is written).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import bounds

from .case import Case, load
from .schema import CaseError

PERTURBABLE = {
    "floor": "multiply the predicted floor by this factor",
    "rate": "raise the predicted per-round contraction to this power",
    "trend": "-1 reverses every claimed trend",
    "form": "multiply the scatter a calibrated form may have around its fit (max_log_sd)",
}


def claimed_quantities(cases: list[Case]) -> set[str]:
    """Predictions named by the cases' generic checks (``bound``, ``scaling``)."""
    return {
        cfg.get("quantity") or cfg["statistic"]
        for case in cases
        for cfg in case.checks.values()
        if cfg["kind"] in ("bound", "scaling")
    }


def parse_perturb(
    items: list[str], extra: set[str] | frozenset[str] = frozenset()
) -> dict[str, float]:
    """``NAME=FACTOR`` pairs; ``extra`` are the further predicted quantities that may be scaled."""
    allowed = sorted(set(PERTURBABLE) | set(extra))
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in allowed:
            raise CaseError(f"--perturb: {item!r}: expected NAME=FACTOR with NAME in {allowed}")
        try:
            factor = float(value)
        except ValueError:
            raise CaseError(f"--perturb: {item!r}: factor must be a number") from None
        if not (factor == factor) or factor == 0 or (name != "trend" and factor < 0):
            raise CaseError(f"--perturb: {item!r}: factor must be a positive number")
        out[name] = factor
    return out


def collect_cases(paths: list[str]) -> list[Case]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.glob("*.toml") if not f.name.startswith("bench"))
        else:
            files.append(p)
    if not files:
        raise CaseError(f"{' '.join(paths)}: no case files found")
    cases = [load(f) for f in files]
    names = Counter(c.name for c in cases)
    dup = [n for n, k in names.items() if k > 1]
    if dup:
        raise CaseError(f"case names must be unique; repeated: {dup}")
    return cases


def executor_of(args: argparse.Namespace) -> str | object:
    """``--executor``, or the existing Dask cluster named by ``--scheduler``/``--scheduler-file``."""
    if args.scheduler is None and args.scheduler_file is None:
        return args.executor
    if args.executor != "dask":
        raise CaseError("--scheduler / --scheduler-file: need --executor dask")
    from .executors import DaskCluster

    return DaskCluster(args.scheduler, args.scheduler_file)


def cmd_run(args: argparse.Namespace) -> int:
    from .runner import run_case

    cases = collect_cases(args.cases)  # validate everything before writing anything
    if args.trainer:  # the user's implementation in place of the case's trainer
        from .user_trainer import with_trainer

        cases = [with_trainer(case, args.trainer) for case in cases]
    mutations = {m for case in cases for b in case.bounds for m in bounds.get(b).mutations}
    perturb = parse_perturb(args.perturb, claimed_quantities(cases) | mutations)
    if args.jobs < 1:
        raise CaseError("--jobs: must be >= 1")
    executor = executor_of(args)
    out = Path(args.out)
    failed = False
    runs = []
    for case in cases:
        run = run_case(
            case,
            out,
            executor,
            args.jobs,
            args.quick,
            perturb,
            show_progress=not args.no_progress,
        )
        runs.append(run)
        failed |= run.evaluation.failed
        print_summary(run)
    if not args.no_report:
        try:
            import reports

            for path in reports.render(out, formats=args.format.split(",")).values():
                print(f"report: {path}")
        except ImportError as exc:  # reports is part of this package; keep running without it
            print(f"report skipped: {exc}", file=sys.stderr)
    print("FAIL" if failed else "PASS")
    return 1 if failed else 0


def print_summary(run) -> None:
    counts = Counter(
        (v.status if v.role != "calibration" else "calibration") for v in run.evaluation.verdicts
    )
    parts = ", ".join(f"{k}: {counts[k]}" for k in sorted(counts))
    print(
        f"{run.case.name}: {parts}  [{run.trained} trained, {run.reused} reused, "
        f"{run.wall_time_s:.1f} s] -> {run.directory}"
    )
    for v in run.evaluation.verdicts:
        if v.status == "fail" and v.role != "calibration":
            print(
                f"  FAIL {v.bound} {v.check} [{v.label}] observed={v.observed:.4g} "
                f"predicted={v.predicted:.4g} allowed={v.allowed:.4g} p_holm={v.p_adjusted:.2g} "
                f"{v.detail}"
            )


def cmd_list(args: argparse.Namespace) -> int:
    for bound_id, b in bounds.registry().items():
        print(f"{bound_id}\n    source:    {b.source}\n    tightness: {b.tightness}")
    return 0


def cmd_vacuity(args: argparse.Namespace) -> int:
    """Where the case's exact bounds are non-vacuous over a parameter region, and the cost."""
    from .vacuity import parse_axes, region_rows

    case = load(args.case)
    ids = [args.bound] if args.bound else list(case.bounds)
    for bound_id in ids:
        bounds.get(bound_id)  # an unknown id is bad input
    rows = region_rows(case, ids, parse_axes(args.grid))
    if not rows:
        print(f"{case.name}: none of {', '.join(ids)} has an explicit error term at these points")
        return 0
    axes = [k for k in rows[0] if k in case.grid or k in parse_axes(args.grid)]
    head = ["bound", *axes, "B/L0", "decay", "rounds", "neuron-steps", "GFLOP"]
    print("  ".join(f"{h:>12}" for h in head))
    for r in rows:
        cells = [r["bound"].split(".")[-1], *[r[k] for k in axes]]
        cells += [f"{r['bound_over_L0']:.3g}", f"{r['exact_decay']:.3g}"]
        cells += [f"{r['rounds_needed']:.3g}", f"{r['neuron_steps']:.3g}", f"{r['flops'] / 1e9:.3g}"]
        print("  ".join(f"{c!s:>12}" for c in cells))
    good = sum(r["non_vacuous"] for r in rows)
    print(
        f"{good} of {len(rows)} points non-vacuous (B < expected initial loss); rounds: until the "
        "envelope is within 2x of B (B = 0: until the loss halves)"
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    import reports

    if not Path(args.results).is_dir():
        raise CaseError(f"{args.results}: no such results directory")
    for path in reports.render(args.results, args.out, formats=args.format.split(",")).values():
        print(f"report: {path}")
    return 0


def cmd_mutate(args: argparse.Namespace) -> int:
    from .mutants import MUTANTS, mutants_for, mutate

    cases = collect_cases(args.cases)
    names = args.only.split(",") if args.only else None
    if names:
        known = {m.name for case in cases for m in mutants_for(case)}
        unknown = set(names) - known
        if unknown:
            raise CaseError(f"--only: unknown mutants {sorted(unknown)}; known: {sorted(known)}")
    caught_somewhere: dict[str, bool] = {}
    for case in cases:
        if not any(names is None or m.name in names for m in mutants_for(case)):
            print(f"{case.name}: no mutant applies to its trainer and checks; skipped")
            continue
        print(f"{case.name}: mutation testing")
        for r in mutate(case, Path(args.out), names, args.quick):
            checks = (
                ", ".join(f"{k}: {v}" for k, v in sorted(r.failures.items())) or "no check failed"
            )
            outcome = (
                "CAUGHT"
                if r.caught
                else "EQUIVALENT"
                if r.equivalent
                else "UNTESTABLE"
                if r.not_testable
                else "MISSED"
            )
            if r.equivalent:
                checks = "identical to the true one on this grid"
            if r.not_testable:
                checks = f"not testable here: {r.not_testable}"
            print(f"  {outcome:10s} {r.mutant.name:24s} {r.mutant.description} [{checks}]")
            # a generated claim mutant belongs to its case; the fixed ones are shared
            shared = any(r.mutant is m for m in MUTANTS)
            name = r.mutant.name if shared else f"{case.name}:{r.mutant.name}"
            if not r.equivalent and not r.not_testable:
                caught_somewhere[name] = caught_somewhere.get(name, False) or r.caught
    missed = sorted(n for n, caught in caught_somewhere.items() if not caught)
    print(
        f"{len(missed)} mutant(s) caught by no case"
        + (f": {', '.join(missed)}" if missed else "")
        + f" ({len(caught_somewhere)} mutants not equivalent on at least one case)"
    )
    return 1 if missed else 0


def cmd_conform(args: argparse.Namespace) -> int:
    from .conform import conform, summary

    cases = collect_cases(args.cases)
    if args.jobs < 1:
        raise CaseError("--jobs: must be >= 1")
    conforming = True
    for case in cases:
        result = conform(
            case,
            args.trainer,
            Path(args.out),
            args.repetitions,
            args.executor,
            args.jobs,
            args.quick,
            show_progress=not args.no_progress,
        )
        for line in summary(result):
            print(line)
        conforming &= result.conforms
    return 0 if conforming else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m verify", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train the grid of each case and check its bounds")
    run.add_argument("cases", nargs="+", help="case files or directories of case files")
    run.add_argument("--out", default="results", help="results directory (default: results)")
    run.add_argument("--jobs", type=int, default=1, help="worker processes")
    run.add_argument("--executor", default="serial", choices=["serial", "process", "dask"])
    run.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="with --executor dask: connect to this existing scheduler (e.g. tcp://host:8786)",
    )
    run.add_argument(
        "--scheduler-file",
        default=None,
        metavar="PATH",
        help="with --executor dask: connect to the scheduler described by this file",
    )
    run.add_argument("--quick", action="store_true", help="apply each case's [quick] overrides")
    run.add_argument(
        "--perturb",
        action="append",
        default=[],
        metavar="NAME=FACTOR",
        help="perturb predictions to see the checks' power: floor=0.1, rate=2, trend=-1, or "
        "QUANTITY=FACTOR for a quantity a case's bound/scaling check tests (multiplies it)",
    )
    run.add_argument(
        "--trainer",
        default="",
        metavar="SPEC",
        help="train with a user callable MODULE:FUNCTION or path/to/file.py:FUNCTION "
        "(results under <case>@<name>; see the README's protocol)",
    )
    run.add_argument("--format", default="html,md,junit", help="report formats")
    run.add_argument("--no-report", action="store_true")
    run.add_argument("--no-progress", action="store_true")
    run.set_defaults(func=cmd_run)
    lst = sub.add_parser("list", help="list the registered bounds")
    lst.set_defaults(func=cmd_list)
    mut = sub.add_parser("mutate", help="check that wrong bounds and broken trainers are rejected")
    mut.add_argument("cases", nargs="+")
    mut.add_argument("--out", default="results/mutants")
    mut.add_argument("--only", default="", help="comma-separated mutant names")
    mut.add_argument("--quick", action="store_true")
    mut.set_defaults(func=cmd_mutate)
    con = sub.add_parser(
        "conform", help="test that a user trainer's losses are distributed like the reference's"
    )
    con.add_argument("cases", nargs="+")
    con.add_argument(
        "--trainer", required=True, metavar="SPEC", help="MODULE:FUNCTION or FILE.py:FUNCTION"
    )
    con.add_argument("--out", default="results/conform")
    con.add_argument(
        "--repetitions", type=int, default=None, help="per sample (default: see the README)"
    )
    con.add_argument("--jobs", type=int, default=1)
    con.add_argument("--executor", default="serial", choices=["serial", "process", "dask"])
    con.add_argument("--quick", action="store_true")
    con.add_argument("--no-progress", action="store_true")
    con.set_defaults(func=cmd_conform)
    vac = sub.add_parser(
        "vacuity", help="where a case's exact bounds are non-vacuous, and what a run there costs"
    )
    vac.add_argument("case", help="a case file")
    vac.add_argument("--bound", default="", help="one bound id (default: the case's bounds)")
    vac.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="replace or add a grid axis (repeatable), e.g. --grid m=1e4,1e5,1e6",
    )
    vac.set_defaults(func=cmd_vacuity)
    rep = sub.add_parser("report", help="render reports from stored results")
    rep.add_argument("results")
    rep.add_argument("--out", default=None)
    rep.add_argument("--format", default="html,md,junit")
    rep.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
