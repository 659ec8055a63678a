"""Analysis: traces, spans and failures from a tracelab database, through DuckDB.

Owns: the DuckDB connection attached to the SQLite file (``duck``), the queries (``queries``,
re-exported here: ``analysis.path_distribution(con)``), the plotly figures (``plots``), the
ipywidgets explorer (``widgets``), escaped HTML tables (``report``), the Parquet lake export
(``lake``, which records what it exported in two bookkeeping tables of the database itself) and
the live dashboard (``live``: ``LiveMonitor``, fed by ``live_state`` from the indexed read-only
``live_queries``).

May import: ``tracelab.config/errors/timefmt`` and ``tracelab.simulate`` (the declared flow for
conformance, the truth format for accuracy). Never imports ``ingest`` or ``kafka``: it reads the
database, whoever wrote it.

Example::

    from tracelab import analysis
    from tracelab.analysis.duck import connect
    analysis.path_distribution(connect("data/processed/event_history.db"))
"""

from tracelab.analysis.queries import *  # noqa: F403 - the queries are this package's API
from tracelab.analysis.queries import __all__ as _queries_all

__all__ = list(_queries_all)
