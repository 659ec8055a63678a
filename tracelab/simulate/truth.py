"""The truth format: what a perfect pipeline stores, as the simulator writes it.

A truth file is JSON Lines, one expected ``events`` row per line with the six schema fields
(timestamps in the stored form), written by :func:`tracelab.simulate.simulate`; beside it,
``<truth>.summary.json`` holds the run's summary with the ``expected`` ledger. This module is
the one owner of both: the engine writes through :func:`truth_summary_path`, and analysis and
tests read through :func:`read_truth` and :func:`read_truth_summary`.

Example::

    from tracelab.simulate.truth import read_truth
    read_truth("data/raw/truth-42.jsonl").num_rows
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.json as pa_json

from tracelab.errors import TracelabError
from tracelab.record import FIELDS

__all__ = ["TRUTH_FIELDS", "read_truth", "read_truth_summary", "truth_summary_path"]

#: The fields of one truth line: the normalized record.
TRUTH_FIELDS: tuple[str, ...] = FIELDS
_SCHEMA = pa.schema([(name, pa.string()) for name in TRUTH_FIELDS])


def truth_summary_path(truth_path: str | Path) -> Path:
    """Where the summary of a truth file goes: ``PATH.summary.json``.

    Example: ``truth_summary_path("t.jsonl")`` -> ``Path("t.jsonl.summary.json")``
    """
    p = Path(truth_path)
    return p.with_name(p.name + ".summary.json")


def read_truth(truth_path: str | Path) -> pa.Table:
    """The expected event rows of a truth file: an Arrow table of the six schema fields (text).

    Raises :class:`~tracelab.errors.TracelabError` when the file is missing or not JSON Lines
    of events.

    Example: ``read_truth("t.jsonl").column("status").to_pylist()[:2]`` -> ``['SUCCESS', ...]``
    """
    path = Path(truth_path)
    if not path.is_file():
        raise TracelabError(f"truth file {path} does not exist")
    if path.stat().st_size == 0:
        return _SCHEMA.empty_table()
    try:
        return pa_json.read_json(
            path,
            parse_options=pa_json.ParseOptions(
                explicit_schema=_SCHEMA, unexpected_field_behavior="ignore"
            ),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise TracelabError(f"truth file {path} is not JSON lines of events: {exc}") from exc


def read_truth_summary(truth_path: str | Path) -> dict[str, Any] | None:
    """The summary written beside a truth file (None when there is none).

    Example: ``read_truth_summary("t.jsonl")["expected"]["joined"]``
    """
    summary = truth_summary_path(truth_path)
    if not summary.is_file():
        return None
    return json.loads(summary.read_text(encoding="utf-8"))
