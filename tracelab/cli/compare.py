"""``tracelab compare A B``: run notebook 06 on two runs (folders, run names or databases) and
export its HTML report, like ``demo`` does, into ``reports/compare-A-vs-B/``.

Example: ``tracelab compare 20250504-103000 20250505-090000`` or ``tracelab compare a.db b.db``
"""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["COMPARE_NOTEBOOK", "add_parser", "run"]

COMPARE_NOTEBOOK = "06_compare.ipynb"


def add_parser(subparsers: Any) -> None:
    """Register the ``compare`` subcommand.

    Example: ``add_parser(argparse.ArgumentParser().add_subparsers())``
    """
    p = subparsers.add_parser(
        "compare",
        help="compare two runs (failure rates, p95, reasons, variants, conformance, ledger)",
        description=(
            "Run notebooks/06_compare with papermill on two runs and export the HTML report. "
            "A and B are run folders (reports/<run>/), run names under reports/, or SQLite "
            "databases."
        ),
    )
    p.add_argument("a", help="run folder, run name or database (the baseline)")
    p.add_argument("b", help="run folder, run name or database (compared with A)")
    p.add_argument("--out", help="output folder (default: reports/compare-A-vs-B)")
    p.add_argument("--flow", help="flow for conformance when a run's manifest names none")
    p.add_argument("--no-html", action="store_true", help="skip the HTML export")
    p.set_defaults(func=run)


def _side(value: str) -> dict[str, str]:
    path = Path(value)
    return {"db": str(path.resolve())} if path.is_file() else {"run": value}


def run(args: argparse.Namespace) -> int:
    """Run the comparison for parsed arguments; returns the exit code.

    Example: ``run(parser.parse_args(["compare", "r1", "r2"]))``
    """
    from tracelab import reports
    from tracelab.reports import manifest

    a, b = _side(args.a), _side(args.b)
    label_a = manifest.resolve_run(a.get("run"), a.get("db"))[2]
    label_b = manifest.resolve_run(b.get("run"), b.get("db"))[2]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"compare-{label_a}-vs-{label_b}")
    out = Path(args.out) if args.out else reports.default_reports_dir(name)
    out.mkdir(parents=True, exist_ok=True)
    params: dict[str, Any] = {"plotly_offline": True}
    for side, given in (("a", a), ("b", b)):
        for key, value in given.items():
            params[f"{key}_{side}"] = (
                str(Path(value).resolve()) if key == "run" and Path(value).exists() else value
            )
    if args.flow:
        params["flow"] = args.flow
    print(f"tracelab compare {label_a} vs {label_b}")
    started = datetime.now(UTC)
    ran = reports.run_notebooks(
        out, params, notebooks=[COMPARE_NOTEBOOK], html=not args.no_html, progress=False
    )
    for nb in ran:
        print(f"  {nb.name:<20} {nb.seconds:7.1f} s  {nb.html or nb.notebook}")
    index = manifest.record_run(
        out, name, params, started, {r.name: r.seconds for r in ran}, "compare"
    )
    print(f"report in {out.resolve()} (index: {index})")
    return 0
