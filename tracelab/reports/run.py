"""Running the notebooks with papermill and exporting them as HTML reports.

Example::

    from tracelab.reports import run_notebooks
    run_notebooks("reports/demo", {"traces": 2000, "seed": 42})
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tracelab.config import NOTEBOOKS_DIR, REPORTS_DIR
from tracelab.errors import ConfigError, ReportError

__all__ = [
    "NOTEBOOKS",
    "NotebookRun",
    "ReportError",
    "export_html",
    "notebook_parameters",
    "run_name",
    "run_notebooks",
]

#: The notebooks of the pipeline, in the order they must run.
NOTEBOOKS: tuple[str, ...] = (
    "01_simulate.ipynb",
    "02_ingest.ipynb",
    "03_traces.ipynb",
    "04_failures.ipynb",
)
#: Notebooks run on demand rather than by ``demo`` (``tracelab compare`` runs 06).
EXTRA_NOTEBOOKS: tuple[str, ...] = ("06_compare.ipynb",)


@dataclass(frozen=True, slots=True)
class NotebookRun:
    """One executed notebook: where its output notebook and HTML report are, and its parameters.

    Example: ``NotebookRun("03_traces.ipynb", Path("r/03.ipynb"), Path("r/03.html"), {}, 1.2)``
    """

    name: str
    notebook: Path
    html: Path | None
    parameters: dict[str, Any]
    seconds: float


def run_name(now: datetime | None = None) -> str:
    """A sortable name for a run, from the UTC time: ``20250504-103000``.

    Example: ``run_name(datetime(2025, 5, 4, 10, 30, tzinfo=UTC))`` -> ``"20250504-103000"``
    """
    return (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")


def notebook_parameters(path: str | Path) -> dict[str, Any]:
    """The parameters a notebook declares in its ``parameters`` cell, with their defaults.

    Example: ``notebook_parameters("notebooks/03_traces.ipynb")["db"]``
    """
    import papermill as pm

    found = pm.inspect_notebook(str(path))
    return {name: spec.get("default") for name, spec in found.items()}


def run_notebooks(
    out_dir: str | Path,
    parameters: Mapping[str, Any] | None = None,
    *,
    notebooks: Sequence[str] = NOTEBOOKS,
    source_dir: str | Path = NOTEBOOKS_DIR,
    html: bool = True,
    progress: bool = True,
    on_done: Callable[[NotebookRun], None] | None = None,
) -> list[NotebookRun]:
    """Execute ``notebooks`` in order with papermill into ``out_dir`` and export each to HTML.

    Each notebook receives only the ``parameters`` its ``parameters`` cell declares. Stops at
    the first notebook that fails (``ReportError`` names it and where its partial output is).

    Example: ``run_notebooks("reports/x", {"db": "x.db"}, notebooks=["03_traces.ipynb"])``
    """
    import time

    import papermill as pm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    src = Path(source_dir)
    given = dict(parameters or {})
    runs: list[NotebookRun] = []
    for name in notebooks:
        nb_in = src / name
        if not nb_in.is_file():
            raise ConfigError(f"notebook {nb_in} does not exist")
        declared = notebook_parameters(nb_in)
        params = {k: v for k, v in given.items() if k in declared}
        nb_out = out / name
        started = time.perf_counter()
        try:
            pm.execute_notebook(
                str(nb_in),
                str(nb_out),
                parameters=params,
                cwd=str(src.resolve().parent),
                progress_bar=progress,
            )
        except pm.PapermillExecutionError as exc:
            raise ReportError(
                f"{name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue} "
                f"(partial output: {nb_out})"
            ) from exc
        html_path = export_html(nb_out) if html else None
        run = NotebookRun(name, nb_out, html_path, params, time.perf_counter() - started)
        runs.append(run)
        if on_done is not None:
            on_done(run)
    return runs


def export_html(notebook: str | Path, html_path: str | Path | None = None) -> Path:
    """Export an executed notebook to a standalone HTML report (code cells included).

    Example: ``export_html("reports/x/03_traces.ipynb")`` -> ``Path("reports/x/03_traces.html")``
    """
    import nbformat
    from nbconvert import HTMLExporter

    src = Path(notebook)
    dest = Path(html_path) if html_path else src.with_suffix(".html")
    try:
        nb = nbformat.read(src, as_version=4)
        body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    except Exception as exc:  # nbconvert raises many unrelated types
        raise ReportError(f"cannot export {src} to HTML: {exc}") from exc
    dest.write_text(body, encoding="utf-8")
    return dest


def default_reports_dir(run: str | None = None) -> Path:
    """``reports/<run>`` under the project root.

    Example: ``default_reports_dir("demo")`` -> ``Path(".../reports/demo")``
    """
    name = run or run_name()
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise ConfigError(f"run name {name!r} may only hold letters, digits, '.', '_' and '-'")
    return REPORTS_DIR / name
