"""The notebooks, executed with papermill on small parameters: the figures they record must agree
with the simulator's truth, and the exported HTML reports must contain every figure.

The committed outputs of 03/04 are checked separately by nbval (see README):
``pytest --nbval notebooks/03_traces.ipynb notebooks/04_failures.ipynb
--nbval-sanitize-with tests/nbval_sanitize.cfg``.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tracelab import notebook, reports
from tracelab.cli import main
from tracelab.cli.demo import LIVE_NOTEBOOK, demo_parameters
from tracelab.simulate.truth import read_truth, read_truth_summary

PLOTLY = "application/vnd.plotly.v1+json"


def figures(notebook: Path) -> list[dict[str, Any]]:
    """Every plotly figure recorded in an executed notebook, in order."""
    nb = nbformat.read(notebook, as_version=4)
    return [
        out["data"][PLOTLY]
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if PLOTLY in out.get("data", {})
    ]


def html_outputs(notebook: Path) -> str:
    nb = nbformat.read(notebook, as_version=4)
    return "\n".join(
        out["data"]["text/html"]
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if "text/html" in out.get("data", {}) and "plotly-graph-div" not in out["data"]["text/html"]
    )


def errors(notebook: Path) -> list[str]:
    nb = nbformat.read(notebook, as_version=4)
    return [
        out.get("ename", "")
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]


def by_type(figs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [f for f in figs if f["data"] and f["data"][0].get("type") == kind]


def sankey_out_of(fig: dict[str, Any], node: str) -> int:
    s = fig["data"][0]
    i = s["node"]["label"].index(node)
    return sum(
        v for src, v in zip(s["link"]["source"], s["link"]["value"], strict=True) if src == i
    )


def truth_rows(truth: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    summary = read_truth_summary(truth)
    assert summary is not None
    return read_truth(truth).to_pylist(), summary


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return notebook.example_db(tmp_path_factory.mktemp("nbrun"), traces=120, seed=21)


@pytest.fixture(scope="module")
def executed(
    small_run: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, reports.NotebookRun]:
    db, truth = small_run
    out = tmp_path_factory.mktemp("reports")
    runs = reports.run_notebooks(
        out,
        {"db": str(db), "truth": str(truth), "export_dir": str(out / "export"), "traces": 5},
        notebooks=["03_traces.ipynb", "04_failures.ipynb"],
        progress=False,
    )
    return {r.name: r for r in runs}


@pytest.mark.slow
def test_traces_notebook_figures_match_truth(
    executed: dict[str, reports.NotebookRun], small_run: tuple[Path, Path]
) -> None:
    run = executed["03_traces.ipynb"]
    assert not errors(run.notebook)
    assert run.parameters.keys() == {"db", "export_dir"}  # only declared parameters are passed
    rows, summary = truth_rows(small_run[1])
    figs = figures(run.notebook)
    assert len(figs) == 8  # waterfall, critical paths, percentiles, paths, slow vs typical x2,
    # variants, directly-follows graph
    (sankey,) = by_type(figs, "sankey")
    assert sankey_out_of(sankey, "start") == summary["traces"] == 120
    # the waterfall shows the trace with the most failures: one mark per checkpoint event
    failures = Counter(r["correlation_id"] for r in rows if r["status"] == "FAILURE")
    most = max(failures.values())
    waterfall = figs[0]
    marks = [t for t in waterfall["data"] if t["type"] == "scatter"]
    failed = next(t for t in marks if t["name"] == "failure")
    assert len(failed["x"]) == most
    cid = next(
        c for c, n in failures.items() if n == most and c in waterfall["layout"]["title"]["text"]
    )
    assert sum(len(t["x"]) for t in marks) == sum(r["correlation_id"] == cid for r in rows)
    exported = sorted(p.name for p in (run.notebook.parent / "export").iterdir())
    assert exported == [
        "events.csv", "events.parquet", "spans.csv", "spans.parquet", "traces.csv",
        "traces.parquet",
    ]  # fmt: skip


@pytest.mark.slow
def test_failures_notebook_figures_match_truth(
    executed: dict[str, reports.NotebookRun], small_run: tuple[Path, Path]
) -> None:
    run = executed["04_failures.ipynb"]
    assert not errors(run.notebook)
    rows, summary = truth_rows(small_run[1])
    figs = figures(run.notebook)
    (heatmap,) = by_type(figs, "heatmap")
    z = [v for row in heatmap["data"][0]["z"] for v in row if v is not None]
    assert sum(z) == sum(r["status"] == "FAILURE" for r in rows)
    sankeys = by_type(figs, "sankey")
    assert sankey_out_of(sankeys[-1], "messages") == summary["messages"]
    tables = html_outputs(run.notebook)
    match = re.search(r"(\d+) of (\d+) measures match the truth", tables)
    assert match is not None and match.group(1) == match.group(2)


@pytest.mark.slow
def test_html_reports_contain_every_figure(executed: dict[str, reports.NotebookRun]) -> None:
    for run in executed.values():
        assert run.html is not None
        text = run.html.read_text(encoding="utf-8")
        assert text.count('class="plotly-graph-div"') == len(figures(run.notebook)) > 0
        assert "Plotly.newPlot" in text
        # self-contained and literal: plotly.js embedded once, nothing from a CDN, no MathJax
        assert text.count("Plotly.newPlot") >= len(figures(run.notebook))
        assert 'import "https://cdn.plot.ly' not in text and 'type="module"' not in text
        assert not re.search(r"<script[^>]*mathjax|tex-svg|tex-mml", text, flags=re.I)
        assert not re.search(r"<script[^>]+src=[\"']https?:", text)


def test_demo_parameters_precedence(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("traces: 500\nseed: 3\ntopic: from-file\n", encoding="utf-8")
    params = demo_parameters("r1", tmp_path, [["seed", "9"], ["malformed", "0.5"]], [str(f)])
    assert params["traces"] == 500 and params["seed"] == 9 and params["malformed"] == 0.5
    assert params["topic"] == "from-file"
    assert params["group"] == "tracelab-r1"
    assert params["db"] == str(tmp_path / "tracelab.db")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n", encoding="utf-8")
    with pytest.raises(Exception, match="mapping"):
        demo_parameters("r1", tmp_path, [], [str(bad)])


@pytest.mark.kafka
@pytest.mark.slow
@pytest.mark.parametrize("shards", [False, True], ids=["one-file", "shards"])
def test_demo_runs_all_four_notebooks_against_kafka(
    kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], shards: bool
) -> None:
    out = tmp_path / "run"
    code = main(
        [
            "demo", "--bootstrap", kafka_bootstrap, "--out", str(out), "--run", f"t1-{shards}",
            "-p", "traces", "80", "-p", "seed", "5", "-p", "until_idle", "2",
            "-p", "plotly_offline", "false", "-p", "shards", str(shards).lower(),
        ]
    )  # fmt: skip
    assert code == 0
    if shards:  # one database per partition, and no single file
        assert len(list((out / "shards").glob("raw-logs-t1-True-p*.db"))) == 6
        assert not (out / "tracelab.db").exists()
    printed = capsys.readouterr().out
    assert str(out.resolve()) in printed
    for name in reports.NOTEBOOKS:
        if shards and name == LIVE_NOTEBOOK:  # the live dashboard watches one database file
            assert not (out / name).exists() and f"{name} watches one database file" in printed
            continue
        assert (out / name).is_file() and not errors(out / name), name
        assert (out / name).with_suffix(".html").is_file()
    rows, summary = truth_rows(out / "truth.jsonl")
    assert summary["traces"] == 80
    (sent,) = figures(out / "01_simulate.ipynb")
    bars = {bar["name"]: dict(zip(bar["x"], bar["y"], strict=True)) for bar in sent["data"]}
    assert bars["paths"] == {f"path {k}": v for k, v in summary["paths"].items()}
    assert sum(bars["faults"].values()) == sum(summary["faults"].values())
    ingest = html_outputs(out / "02_ingest.ipynb")
    assert "adds up = True" in ingest
    (ledger,) = by_type(figures(out / "02_ingest.ipynb"), "sankey")
    assert sankey_out_of(ledger, "messages") == summary["messages"]
    acc = re.search(
        r"(\d+) of (\d+) measures match the truth", html_outputs(out / "04_failures.ipynb")
    )
    assert acc is not None and acc.group(1) == acc.group(2)
    (paths,) = by_type(figures(out / "03_traces.ipynb"), "sankey")
    assert sankey_out_of(paths, "start") == 80


@pytest.mark.parametrize("name", reports.NOTEBOOKS)
def test_each_notebook_has_one_parameters_cell_papermill_reads_fully(name: str) -> None:
    import ast

    path = Path(__file__).resolve().parent.parent / "notebooks" / name
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    names = {node.targets[0].id for node in ast.parse(tagged[0].source).body}
    assert names == set(reports.notebook_parameters(path))
    assert "plotly_offline" in names
    # thin: the logic lives in the package, not in notebook functions or classes
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert not re.search(r"^\s*(def|class) ", code, flags=re.M)
