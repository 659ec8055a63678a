"""Simulate: declared flows -> seeded traces -> each system's native log lines, with exact truth.

Owns: the flow file format (``flows``), the engine that runs traces with failures, retries,
parallel branches and faults (``engine``), how each system writes its lines (``emitters``),
where lines go (``sinks``: files, lists; the Kafka sink implements the same interface), the
truth: what a perfect pipeline stores (``truth``), and the same engine in real time (``live``:
``simulate --rate``).

May import: ``tracelab.config/errors/closing/timefmt`` (and the style registry once it exists).
Never imports ``ingest``: the truth is the independent check of the normalizer, so it must not
reuse it.

Example::

    from tracelab.simulate import Faults, simulate
    from tracelab.simulate.flows import load_flow
    from tracelab.simulate.sinks import FileSink
    with FileSink("run.log") as sink:
        simulate(load_flow("data/flows/default.yaml"), 100, 7, Faults(), sink, truth_path="t.jsonl")
"""

from tracelab.simulate.engine import (
    FAULT_NAMES,
    Faults,
    SimulationResult,
    corrupt,
    simulate,
)
from tracelab.simulate.truth import read_truth, truth_summary_path

__all__ = [
    "FAULT_NAMES",
    "Faults",
    "SimulationResult",
    "corrupt",
    "read_truth",
    "simulate",
    "truth_summary_path",
]
