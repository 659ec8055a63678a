"""The glue the notebooks call: one line opens what a notebook works on.

Notebooks stay thin: ``01``/``02`` start with :func:`open_kafka`, ``03``/``04`` with
:func:`open_analysis`, ``05`` with :func:`open_live`, ``06`` with :func:`open_runs`. This module
sits at the top of the package (beside ``cli``): it may import every stage, which is why the
analysis package itself never has to import ingest or kafka.

Example::

    from tracelab.notebook import open_analysis
    con, truth = open_analysis(db)   # db None: a small seeded example run, made here
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import duckdb
import pandas as pd

from tracelab import config
from tracelab.config import DEFAULT_FLOW

if TYPE_CHECKING:
    from tracelab.analysis.live import LiveMonitor

__all__ = [
    "EXAMPLE_SEED",
    "EXAMPLE_TRACES",
    "Runs",
    "example_db",
    "open_analysis",
    "open_kafka",
    "open_live",
    "open_runs",
]

#: Small seeded example used when a notebook is run without a database (also what nbval checks).
EXAMPLE_TRACES = 300
EXAMPLE_SEED = 7
EXAMPLE_FAULTS: dict[str, float] = {
    "duplicate": 0.01,
    "detail_first": 0.02,
    "missing_detail": 0.02,
    "orphan_detail": 0.01,
    "malformed": 0.005,
}


def example_db(
    directory: str | Path | None = None,
    traces: int = EXAMPLE_TRACES,
    seed: int = EXAMPLE_SEED,
    flow: str | Path = DEFAULT_FLOW,
    faults: Mapping[str, float] | None = None,
) -> tuple[Path, Path]:
    """Simulate a small seeded run to a file and normalize it into a fresh SQLite database.

    ``faults`` maps fault names to rates (default: a little of each, no clock skew). Returns
    (database path, truth path); the simulator's summary is ``<truth>.summary.json``. Used
    when a notebook gets no database, so that every notebook runs top to bottom on its defaults
    with reproducible results.

    Example: ``db, truth = example_db(traces=100, seed=1)``
    """
    from tracelab.ingest.pipeline import normalize_files
    from tracelab.simulate import Faults, simulate
    from tracelab.simulate.flows import load_flow
    from tracelab.simulate.sinks import FileSink

    out = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="tracelab-example-"))
    out.mkdir(parents=True, exist_ok=True)
    raw = out / "example.log"
    truth = out / "example.truth.jsonl"
    db = out / "example.db"
    for stale in (raw, truth, db):
        stale.unlink(missing_ok=True)
    rates = dict(EXAMPLE_FAULTS if faults is None else faults)
    with FileSink(raw) as sink:
        simulate(
            load_flow(flow),
            traces=traces,
            seed=seed,
            faults=Faults(**rates),
            sink=sink,
            truth_path=truth,
        )
    normalize_files([raw], db, progress=False)
    return db, truth


def open_analysis(
    db: str | Path | None, *, plotly_offline: bool = False, overview: bool = True
) -> tuple[duckdb.DuckDBPyConnection, Path | None]:
    """Set up figures, open ``db`` for analysis and show what it holds: ``(connection, truth)``.

    ``db`` None simulates and normalizes a small seeded example run (:func:`example_db`); its
    truth file is returned then, else None. The SQLite file is read once into columnar memory.

    Example: ``con, truth = open_analysis("data/processed/event_history.db")``
    """
    from tracelab import analysis
    from tracelab.analysis import plots
    from tracelab.analysis.duck import connect
    from tracelab.analysis.report import show_table

    plots.setup_notebook(offline=plotly_offline)
    truth = None
    if db is None:
        db, truth = example_db()
    con = connect(db, materialize=True)
    if overview:
        show_table(pd.DataFrame([analysis.overview(con)]), caption="what the database holds")
    return con, truth


def open_kafka(bootstrap: str | None, *, plotly_offline: bool = False) -> str:
    """Set up figures and resolve the Kafka address: ``bootstrap``, else ``TRACELAB_BOOTSTRAP``,
    else the local broker (started if needed).

    Example: ``bootstrap = open_kafka(None)`` -> ``'127.0.0.1:9092'``
    """
    from tracelab.analysis import plots
    from tracelab.kafka.broker import resolve_bootstrap

    plots.setup_notebook(offline=plotly_offline)
    return resolve_bootstrap(bootstrap)


def open_live(
    db: str | Path | None = None,
    bootstrap: str | None = None,
    topic: str | None = None,
    group: str | None = None,
    flow: str | Path | None = None,
    **options: Any,
) -> LiveMonitor:
    """The live dashboard of notebook 05 from its parameters, where None means: the environment
    ``make live`` sets (``TRACELAB_LIVE_DB``, ``TRACELAB_BOOTSTRAP``, ``TRACELAB_LIVE_TOPIC``,
    ``TRACELAB_LIVE_GROUP``, ``TRACELAB_LIVE_FLOW``), else the defaults; without any database,
    a small seeded example run (:func:`example_db`). With a bootstrap, the consumer lag per
    partition comes from Kafka (:class:`tracelab.kafka.PartitionLag`). ``options`` go to
    :class:`~tracelab.analysis.live.LiveMonitor` (refresh_s, window_s, stuck_after_s, ...).

    Example: ``open_live(None, refresh_s=1.0).run()``
    """
    from tracelab.analysis.live import LiveMonitor

    env = os.environ.get
    db = db or env("TRACELAB_LIVE_DB")
    if not db:
        db, _truth = example_db()
    bootstrap = bootstrap or config.bootstrap_from_env()
    topic = topic or env("TRACELAB_LIVE_TOPIC") or config.DEFAULT_TOPIC
    own_lag = None
    if bootstrap and "lag" not in options:
        from tracelab.kafka import PartitionLag

        options["lag"] = own_lag = PartitionLag(bootstrap, topic, db)
    try:
        return LiveMonitor(
            db,
            flow=flow or env("TRACELAB_LIVE_FLOW") or None,
            topic=topic,
            group=group or env("TRACELAB_LIVE_GROUP"),
            **options,
        )
    except BaseException:
        if own_lag is not None:  # the monitor that would have closed it was never made
            own_lag.close()
        raise


class Runs(NamedTuple):
    """Two runs opened side by side by :func:`open_runs`."""

    con_a: duckdb.DuckDBPyConnection
    con_b: duckdb.DuckDBPyConnection
    names: tuple[str, str]
    flows: tuple[Path, Path]


def open_runs(
    run_a: str | Path | None = None,
    run_b: str | Path | None = None,
    db_a: str | Path | None = None,
    db_b: str | Path | None = None,
    *,
    flow: str | Path | None = None,
    plotly_offline: bool = False,
) -> Runs:
    """Set up figures and open two runs (run folders, run names or databases) for comparison.

    With nothing given, two seeded example runs are made, b with ten times the fault rates of a.
    Each side's flow is the one its manifest names, else ``flow``, else the default flow.

    Example: ``con_a, con_b, names, flows = open_runs("20250504-103000", "20250505-090000")``
    """
    from tracelab.analysis import plots
    from tracelab.analysis.duck import connect
    from tracelab.reports.manifest import resolve_run

    plots.setup_notebook(offline=plotly_offline)
    if run_a is None and run_b is None and db_a is None and db_b is None:
        db_a, _ = example_db(faults=EXAMPLE_FAULTS)
        db_b, _ = example_db(faults={k: 10 * v for k, v in EXAMPLE_FAULTS.items()})
    path_a, flow_a, name_a = resolve_run(run_a, db_a)
    path_b, flow_b, name_b = resolve_run(run_b, db_b)
    if name_a == name_b:
        name_a, name_b = f"a: {name_a}", f"b: {name_b}"
    fallback = Path(flow) if flow else DEFAULT_FLOW
    return Runs(
        connect(path_a, materialize=True),
        connect(path_b, materialize=True),
        (name_a, name_b),
        (Path(flow_a) if flow_a else fallback, Path(flow_b) if flow_b else fallback),
    )
