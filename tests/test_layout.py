"""The package's layout rules: imports point only down the pipeline, and every stage says what
it owns. Walks every module's imports with ``ast`` (module-level and function-level alike)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tracelab"

#: Layers from the bottom up. A module may import from its own stage and from lower layers only.
LAYERS: dict[str, int] = {
    "core": 0,  # config, errors, closing, timefmt, __init__
    "styles": 1,
    "simulate": 2,
    "ingest": 2,
    "kafka": 3,
    "analysis": 3,
    "top": 4,  # cli, reports, notebook glue, __main__
}
STAGES = ("styles", "simulate", "ingest", "kafka", "analysis", "cli", "reports")
TOP_MODULES = {"notebook", "__main__"}
#: Edges that the layers alone would allow but that the design forbids.
FORBIDDEN: list[tuple[str, str, str]] = [
    # the simulator's truth is the independent check of the normalizer
    ("tracelab.simulate", "tracelab.ingest", "the simulator never reuses the normalizer"),
    ("tracelab.analysis", "tracelab.ingest", "analysis reads the database, whoever wrote it"),
    ("tracelab.analysis", "tracelab.kafka", "analysis reads the database, not Kafka"),
]


def stage_of(module: str) -> str:
    """``tracelab.ingest.store`` -> ``ingest``; top-level core modules -> ``core``."""
    parts = module.split(".")
    if len(parts) == 1:
        return "core"
    head = parts[1]
    if head in ("cli", "reports") or head in TOP_MODULES:
        return "top"
    if head in STAGES:
        return head
    return "core"


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def tracelab_imports(source: str) -> list[tuple[int, str]]:
    """``(line, imported module)`` for every import of a tracelab module in ``source``."""
    tree = ast.parse(source)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("tracelab")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "tracelab":  # from tracelab import analysis, config
                found += [(node.lineno, f"tracelab.{a.name}") for a in node.names]
            elif node.module.startswith("tracelab."):
                found.append((node.lineno, node.module))
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def layer(module: str) -> int:
    return LAYERS[stage_of(module)]


def violations(me: str, source: str) -> list[str]:
    """What in ``source`` (the text of module ``me``) breaks the layout rules."""
    mine = stage_of(me)
    wrong = []
    for line, target in tracelab_imports(source):
        theirs = stage_of(target)
        if theirs == mine:
            continue
        if layer(target) >= layer(me):
            wrong.append(f"{me}:{line} ({mine}) imports {target} ({theirs})")
        for src, dst, why in FORBIDDEN:
            if me.startswith(src) and target.startswith(dst):
                wrong.append(f"{me}:{line} imports {target}: {why}")
    return wrong


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down_the_pipeline(path: Path) -> None:
    wrong = violations(module_name(path), path.read_text(encoding="utf-8"))
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    ("me", "source"),
    [
        ("tracelab.ingest.store", "from tracelab.kafka import consume"),
        ("tracelab.ingest.pipeline", "def f():\n    import tracelab.cli.main\n"),
        ("tracelab.analysis.queries", "from tracelab.ingest.store import SQLiteStore"),
        ("tracelab.analysis.plots", "from tracelab import kafka"),
        ("tracelab.simulate.truth", "from tracelab.ingest.parsers import parse"),
        ("tracelab.config", "from tracelab.analysis import plots"),
    ],
)
def test_the_checker_catches_an_upward_import(me: str, source: str) -> None:
    assert violations(me, source)


def test_the_checker_allows_downward_imports() -> None:
    assert not violations("tracelab.kafka.consumer", "from tracelab.ingest.store import Summary")
    assert not violations("tracelab.cli.demo", "from tracelab.kafka.broker import ensure_broker")
    assert not violations("tracelab.analysis.queries", "from tracelab.simulate.truth import x")


@pytest.mark.parametrize(
    "folder", sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
)
def test_every_stage_says_what_it_owns_and_may_import(folder: Path) -> None:
    doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text(encoding="utf-8")))
    assert doc, f"{folder.name}/__init__.py has no docstring"
    if folder.name not in ("broker",):
        assert "Owns" in doc or "owns" in doc, f"{folder.name}: say what the stage owns"
        assert "import" in doc, f"{folder.name}: say what the stage may import"


def test_producing_loads_neither_the_consumer_nor_sqlite() -> None:
    """A notebook that only produces (01) imports the sink and topic views, not the ingest path."""
    code = (
        "import sys\n"
        "from tracelab.kafka import KafkaSink, topic_overview\n"
        "from tracelab.simulate import simulate\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('tracelab.ingest', "
        "'tracelab.kafka.consumer', 'tracelab.kafka.writers')) or m == 'sqlite3')\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "", f"loaded: {out.stdout.strip()}"


def test_every_lazy_kafka_name_is_the_object_not_a_module() -> None:
    """Loading one name first must not shadow another by its submodule (``consume``)."""
    code = (
        "import types, tracelab.kafka as k\n"
        "names = sorted(k.__all__, key=lambda n: n != 'ConsumeStats')\n"
        "bad = [n for n in names if isinstance(getattr(k, n), types.ModuleType)]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "", f"modules instead of objects: {out.stdout.strip()}"
