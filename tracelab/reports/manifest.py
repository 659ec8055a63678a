"""Run folders: ``manifest.json`` (what was run, with what, and the headline numbers), a run's
``index.html`` linking its reports, and ``reports/index.html`` listing every run.

A run folder is ``reports/<run>/`` as written by ``tracelab demo`` (or ``tracelab compare``).
Every text that reaches HTML is escaped.

Example::

    from tracelab.reports import manifest
    manifest.write_manifest("reports/r1", "r1", params, started, finished)
    manifest.write_run_index("reports/r1")
    manifest.write_reports_index("reports")
"""

from __future__ import annotations

import ast
import html
import json
import subprocess
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from tracelab import __version__
from tracelab.config import DEFAULT_FLOW, NOTEBOOKS_DIR, REPORTS_DIR, ROOT
from tracelab.errors import ReportError

__all__ = [
    "record_run",
    "DEPENDENCIES",
    "MANIFEST",
    "build_manifest",
    "git_describe",
    "load_manifest",
    "offset_ranges",
    "resolve_run",
    "write_manifest",
    "write_reports_index",
    "write_run_index",
]

MANIFEST = "manifest.json"
#: Distributions whose versions a manifest records.
DEPENDENCIES: tuple[str, ...] = (
    "duckdb", "pandas", "plotly", "papermill", "kafka-python", "nbconvert", "pyarrow",
    "ipywidgets", "msgspec",
)  # fmt: skip
#: Parameters that name the run's inputs (recorded at the top level of the manifest too).
_KEYS = ("seed", "traces", "flow", "topic", "group", "db", "truth", "bootstrap")


def git_describe(root: str | Path = ROOT) -> str | None:
    """``git describe --always --dirty --tags`` of the checkout, or None outside a git tree.

    Example: ``git_describe()`` -> ``"f4ecab4-dirty"``
    """
    try:
        done = subprocess.run(  # noqa: S603 - fixed argument list, no shell
            ["git", "describe", "--always", "--dirty", "--tags"],  # noqa: S607
            cwd=str(root), capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"tracelab": __version__}
    for name in DEPENDENCIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def offset_ranges(db: str | Path) -> list[dict[str, Any]]:
    """Per source (Kafka topic or file) and partition: the lowest and highest offset stored in
    the database (events, details and quarantine together) and the count of messages.

    Example: ``offset_ranges("reports/r1/tracelab.db")[0]["topic"]``
    """
    from tracelab.analysis.duck import connect

    con = connect(db)
    try:
        rows = con.execute(
            """SELECT source, "partition", min("offset"), max("offset"), count(*) FROM (
                   SELECT source, "partition", "offset" FROM events UNION ALL
                   SELECT source, "partition", "offset" FROM details UNION ALL
                   SELECT source, "partition", "offset" FROM quarantine)
               GROUP BY ALL ORDER BY source, "partition" NULLS FIRST"""
        ).fetchall()
    finally:
        con.close()
    return [
        {"topic": s, "partition": p, "first_offset": lo, "last_offset": hi, "messages": n}
        for s, p, lo, hi, n in rows
    ]


def _headline(db: Path, truth: Path | None) -> dict[str, Any]:
    from tracelab import analysis
    from tracelab.analysis import runcompare
    from tracelab.analysis.duck import connect

    con = connect(db)
    try:
        out = runcompare.headline(con)
        if truth is not None and truth.is_file():
            acc = analysis.accuracy(con, truth)
            out["truth_measures"] = len(acc)
            out["truth_matched"] = int(acc["match"].sum())
    finally:
        con.close()
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def build_manifest(
    folder: str | Path,
    run: str,
    parameters: Mapping[str, Any],
    started: datetime,
    finished: datetime,
    notebooks: Mapping[str, float] | None = None,
    kind: str = "demo",
) -> dict[str, Any]:
    """The manifest of a run folder (see :func:`write_manifest`); reads its database (the ``db``
    parameter) for offsets and headline numbers when it exists.

    Example: ``build_manifest("reports/r1", "r1", {"db": "reports/r1/tracelab.db"}, t0, t1)``
    """
    params = _plain(dict(parameters))
    db = Path(str(params["db"])) if params.get("db") else None
    truth = Path(str(params["truth"])) if params.get("truth") else None
    manifest: dict[str, Any] = {
        "run": run,
        "kind": kind,
        "started": started.astimezone(UTC).isoformat(timespec="seconds"),
        "finished": finished.astimezone(UTC).isoformat(timespec="seconds"),
        "seconds": round((finished - started).total_seconds(), 1),
        **{k: params.get(k) for k in _KEYS},
        "parameters": params,
        "notebooks": {k: round(float(v), 1) for k, v in (notebooks or {}).items()},
        "versions": _versions(),
        "git": git_describe(),
        "offsets": [],
        "headline": {},
    }
    if db is not None and db.exists():  # a database file or a shard folder
        manifest["offsets"] = offset_ranges(db)
        manifest["headline"] = _headline(db, truth)
    return manifest


def write_manifest(folder: str | Path, *args: Any, **kwargs: Any) -> Path:
    """Write ``folder/manifest.json`` (arguments as :func:`build_manifest`); returns its path.

    Example: ``write_manifest("reports/r1", "r1", params, started, finished)``
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    path = out / MANIFEST
    data = build_manifest(out, *args, **kwargs)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def load_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of a run folder. Raises ``ReportError`` when it is missing or unreadable.

    Example: ``load_manifest("reports/r1")["headline"]["traces"]``
    """
    path = Path(folder) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path} does not hold a manifest object")
    return data


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#263238}
table{border-collapse:collapse}td,th{border:1px solid #cfd8dc;padding:4px 10px;text-align:left}
th{background:#eceff1}td.n{text-align:right}.bad{color:#c62828}.ok{color:#2e7d32}
code{background:#eceff1;padding:1px 4px}"""

_HEADLINE = (
    ("traces", "traces", "{:,}"),
    ("events", "events", "{:,}"),
    ("failure_rate", "failed traces", "{:.1%}"),
    ("p95_ms", "p95 trace ms", "{:,.0f}"),
    ("quarantined", "quarantined", "{:,}"),
)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _fmt(value: Any, pattern: str) -> str:
    if value is None:
        return ""
    try:
        return _e(pattern.format(value))
    except (ValueError, TypeError):
        return _e(value)


def _page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}'
        f"</title><style>{_CSS}</style></head><body><h1>{_e(title)}</h1>{body}</body></html>\n"
    )


def _headline_cells(head: Mapping[str, Any]) -> str:
    cells = "".join(f'<td class="n">{_fmt(head.get(k), p)}</td>' for k, _, p in _HEADLINE)
    balanced = head.get("ledger_balanced")
    cls = "ok" if balanced else "bad"
    cells += f'<td class="{cls}">{"" if balanced is None else _e(balanced)}</td>'
    if "truth_measures" in head:
        ok = head.get("truth_matched") == head.get("truth_measures")
        cells += (
            f'<td class="{"ok" if ok else "bad"}">'
            f"{_e(head.get('truth_matched'))} of {_e(head.get('truth_measures'))}</td>"
        )
    else:
        cells += "<td></td>"
    return cells


_HEAD_TH = "".join(f"<th>{_e(t)}</th>" for _, t, _ in _HEADLINE) + (
    "<th>ledger adds up</th><th>truth measures matched</th>"
)


def write_run_index(folder: str | Path) -> Path:
    """Write ``folder/index.html``: the run's parameters, versions and headline numbers, and a
    link to each HTML report in the folder. Returns its path.

    Example: ``write_run_index("reports/r1")``
    """
    out = Path(folder)
    m = load_manifest(out)
    reports = sorted(p.name for p in out.glob("*.html") if p.name != "index.html")
    links = "".join(
        f'<li><a href="{_e(name)}">{_e(name)}</a>'
        + (f" ({_e(m['notebooks'].get(name.removesuffix('.html') + '.ipynb'))} s)"
           if name.removesuffix(".html") + ".ipynb" in m.get("notebooks", {}) else "")
        + "</li>"
        for name in reports
    )  # fmt: skip
    head = m.get("headline") or {}
    params = "".join(
        f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>"
        for k, v in sorted((m.get("parameters") or {}).items())
    )
    versions = ", ".join(f"{_e(k)} {_e(v)}" for k, v in (m.get("versions") or {}).items() if v)
    offsets = "".join(
        f"<tr><td>{_e(o['topic'])}</td><td>{_e(o['partition'])}</td>"
        f'<td class="n">{_e(o["first_offset"])}</td><td class="n">{_e(o["last_offset"])}</td>'
        f'<td class="n">{_e(o["messages"])}</td></tr>'
        for o in m.get("offsets") or []
    )
    body = (
        f"<p>{_e(m.get('kind'))} run, {_e(m.get('started'))} to {_e(m.get('finished'))} "
        f"({_e(m.get('seconds'))} s), code <code>{_e(m.get('git'))}</code>. "
        f'<a href="../index.html">all runs</a> · <a href="{MANIFEST}">{MANIFEST}</a></p>'
        f"<h2>Reports</h2><ul>{links or '<li>none</li>'}</ul>"
        f"<h2>Headline</h2><table><tr>{_HEAD_TH}</tr><tr>{_headline_cells(head)}</tr></table>"
        f"<h2>Parameters</h2><table>{params}</table>"
        + (
            "<h2>Offsets stored</h2><table><tr><th>topic / source</th><th>partition</th>"
            f"<th>first</th><th>last</th><th>messages</th></tr>{offsets}</table>"
            if offsets
            else ""
        )
        + f"<h2>Versions</h2><p>{versions}</p>"
    )
    path = out / "index.html"
    path.write_text(_page(f"tracelab run {m.get('run', out.name)}", body), encoding="utf-8")
    return path


def write_reports_index(reports: str | Path) -> Path:
    """Write ``reports/index.html``: one row per run folder holding a manifest (newest first),
    linking its index, with its headline numbers. Returns its path.

    Example: ``write_reports_index("reports")``
    """
    root = Path(reports)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for folder in sorted((p for p in root.iterdir() if (p / MANIFEST).is_file()), reverse=True):
        try:
            m = load_manifest(folder)
        except ReportError:
            continue
        rows.append(
            (
                str(m.get("started") or ""),
                f'<tr><td><a href="{_e(folder.name)}/index.html">{_e(m.get("run", folder.name))}'
                f"</a></td><td>{_e(m.get('kind'))}</td><td>{_e(m.get('started'))}</td>"
                f"<td>{_e(m.get('flow') or '')}</td><td>{_e(m.get('seed'))}</td>"
                f"{_headline_cells(m.get('headline') or {})}</tr>",
            )
        )
    rows.sort(reverse=True)
    body = (
        f"<p>{len(rows)} runs.</p><table><tr><th>run</th><th>kind</th><th>started</th>"
        f"<th>flow</th><th>seed</th>{_HEAD_TH}</tr>{''.join(r for _, r in rows)}</table>"
    )
    path = root / "index.html"
    path.write_text(_page("tracelab runs", body), encoding="utf-8")
    return path


def resolve_run(
    run: str | Path | None = None, db: str | Path | None = None, reports: str | Path = REPORTS_DIR
) -> tuple[Path, str | None, str]:
    """(database, flow or None, label) of a run given as a run folder, a run name under
    ``reports``, or directly as a database file (``db`` wins over ``run``'s database).

    Example: ``resolve_run("20250504-103000")`` -> ``(Path(".../tracelab.db"), None, "2025...")``
    """
    if run is None and db is None:
        raise ReportError("give a run folder or name, or a database")
    flow: str | None = None
    label = Path(str(db)).stem if db is not None else ""
    database = Path(str(db)) if db is not None else None
    if run is not None:
        folder = Path(str(run))
        if not folder.exists() and (Path(reports) / str(run)).is_dir():
            folder = Path(reports) / str(run)
        if folder.is_file():
            database = database or folder
            label = folder.stem
        elif folder.is_dir():
            label = folder.name
            if (folder / MANIFEST).is_file():
                m = load_manifest(folder)
                label = str(m.get("run") or folder.name)
                flow = m.get("flow")
                if database is None and m.get("db"):
                    database = Path(str(m["db"]))
            if database is None or not database.exists():  # a file or a shard folder
                database = database if database and database.exists() else folder / "tracelab.db"
        else:
            raise ReportError(f"run {run!s} is neither a folder, a run under {reports}, nor a file")
    assert database is not None
    if not database.exists():
        raise ReportError(f"database {database} does not exist")
    return database, flow, label


def record_run(
    out: Path,
    name: str,
    params: Mapping[str, Any],
    started: datetime,
    notebooks: Mapping[str, float],
    kind: str = "demo",
) -> Path:
    """Write the run's ``manifest.json`` and ``index.html`` and refresh the reports index beside
    it; returns the run's index. Parameters a notebook took from its defaults (seed, traces,
    flow of 01_simulate) are recorded with those defaults.

    Example: ``record_run(Path("reports/r1"), "r1", params, started, {"03_traces.ipynb": 4.2})``
    """
    from tracelab.reports.run import NOTEBOOKS, notebook_parameters

    recorded = dict(params)
    if kind == "demo":
        first = NOTEBOOKS_DIR / NOTEBOOKS[0]
        for key, value in notebook_parameters(first).items():
            if key in ("seed", "traces", "flow") and key not in recorded:
                try:
                    recorded[key] = ast.literal_eval(str(value))
                except (ValueError, SyntaxError):
                    recorded[key] = str(value)
        if recorded.get("flow") is None:
            recorded["flow"] = str(DEFAULT_FLOW.relative_to(ROOT))
    write_manifest(out, name, recorded, started, datetime.now(UTC), notebooks, kind=kind)
    index = write_run_index(out)
    write_reports_index(out.parent)
    return index
