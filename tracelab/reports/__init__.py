"""Reports: notebooks executed with papermill into ``reports/<run>/`` and exported to HTML.

Owns: which notebooks make a run and in what order, executing them with parameters, and the HTML
export. Sits at the top of the package with ``cli`` and ``notebook``: it runs notebooks, which
may use every stage, but no stage imports it.

Example::

    from tracelab.reports import run_notebooks
    run_notebooks("reports/demo", {"traces": 2000, "seed": 42})
"""

from tracelab.reports.run import (
    NOTEBOOKS,
    NotebookRun,
    default_reports_dir,
    export_html,
    notebook_parameters,
    run_name,
    run_notebooks,
)

__all__ = [
    "NOTEBOOKS",
    "NotebookRun",
    "default_reports_dir",
    "export_html",
    "notebook_parameters",
    "run_name",
    "run_notebooks",
]
