"""End to end in a real browser: JupyterLab (started here on a free port) driven by Playwright in
Debian's Chromium (no browser download). The live dashboard of notebook 05 follows a running
``simulate --rate`` + ``consume``; the trace explorer of notebook 03 reacts to its filters. No
JavaScript error may reach the page's console (a failed request, e.g. to a CDN, counts as one).

Screenshots of failures are kept in ``reports/test-artifacts/`` (``TRACELAB_SCREENSHOTS=DIR``
keeps one of every step as well).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tracelab.kafka.broker import free_port

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("TRACELAB_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "reports" / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
    "--disable-default-apps", "--metrics-recording-only", "--mute-audio",
]  # fmt: skip
#: Lab settings that keep it off the (closed) network: no news, no update check. Lab's own
#: notebook windowing (outputs offscreen rendered lazily) is left at its default.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/extensionmanager-extension/plugin.jupyterlab-settings": {"disclaimed": False},
}

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _python_bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


@pytest.fixture(scope="module")
def chromium() -> str:
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium); "
            ".ci/run does it"
        )
    return CHROMIUM


def _stop(proc: subprocess.Popen[Any] | None, timeout: float = 30) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class LiveRun:
    """A running ``simulate --rate`` and ``consume`` into one database."""

    db: Path
    topic: str
    bootstrap: str
    procs: list[subprocess.Popen[Any]] = field(default_factory=list)


@pytest.fixture(scope="module")
def live_run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRun]:
    work = tmp_path_factory.mktemp("live")
    run = LiveRun(work / "live.db", f"browser-live-{os.getpid()}", kafka_bootstrap)
    py = [sys.executable, "-m", "tracelab"]
    try:
        sim = subprocess.Popen(
            [*py, "simulate", "--rate", "40", "--duration", "600", "--seed", "3", "--bootstrap",
             kafka_bootstrap, "--topic", run.topic, "--partitions", "3", "--truth",
             str(work / "truth.jsonl"), "--no-progress", "--malformed", "0.02",
             "--missing-detail", "0.1"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        run.procs.append(sim)
        time.sleep(2)  # the topic exists once the producer is up
        cons = subprocess.Popen(
            [*py, "consume", "--bootstrap", kafka_bootstrap, "--topic", run.topic, "--group",
             "browser-live", "--db", str(run.db), "--no-progress"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        run.procs.append(cons)
        deadline = time.monotonic() + 60
        while not run.db.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert run.db.exists(), "consume did not create its database"
        yield run
    finally:
        for proc in reversed(run.procs):
            _stop(proc)


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    proc: subprocess.Popen[Any]

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"


@pytest.fixture(scope="module")
def lab(live_run: LiveRun, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("lab")
    for name in ("03_traces.ipynb", "05_live.ipynb"):
        shutil.copy(ROOT / "notebooks" / name, root / name)
    settings = tmp_path_factory.mktemp("lab-settings")
    for rel, values in LAB_SETTINGS.items():
        path = settings / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values), encoding="utf-8")
    port, token = free_port(), secrets.token_hex(16)
    env = dict(
        os.environ,
        TRACELAB_LIVE_DB=str(live_run.db),
        TRACELAB_BOOTSTRAP=live_run.bootstrap,
        TRACELAB_LIVE_TOPIC=live_run.topic,
        TRACELAB_LIVE_GROUP="browser-live",
        JUPYTER_CONFIG_DIR=str(tmp_path_factory.mktemp("jupyter-config")),
    )
    log = open(root.parent / "lab.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [_python_bin("jupyter"), "lab", "--no-browser", "--allow-root", "--ip", "127.0.0.1",
         "--port", str(port), f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={settings}",
         "--LabApp.news_url=", "--ServerApp.open_browser=False"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "JupyterLab did not start: " + (root.parent / "lab.log").read_text()[-2000:]
                    ) from None
                time.sleep(0.5)
        yield Lab(url, token, root, proc)
    finally:
        _stop(proc)
        log.close()


@dataclass
class Page:
    page: Any
    problems: list[str]
    name: str

    def shot(self, step: str, element: Any = None) -> None:
        where = os.environ.get("TRACELAB_SCREENSHOTS")
        if where:
            Path(where).mkdir(parents=True, exist_ok=True)
            path = str(Path(where) / f"{self.name}-{step}.png")
            (element or self.page).screenshot(path=path)


@pytest.fixture
def browser_page(chromium: str, request: pytest.FixtureRequest) -> Iterator[Page]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        problems: list[str] = []
        page.on(
            "console",
            lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on(
            "requestfailed",
            lambda r: problems.append(f"request failed: {r.url} ({r.failure})"),
        )
        wrapped = Page(page, problems, request.node.name)
        try:
            yield wrapped
        except BaseException:
            raise
        finally:
            failed = getattr(request.node, "_failed", True)
            if failed:
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(Exception):
                    page.screenshot(
                        path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True
                    )
            context.close()
            browser.close()


@contextlib.contextmanager
def marks_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """Keep the failure screenshot unless the test body got to its end."""
    request.node._failed = True
    yield
    request.node._failed = False


def open_and_run(p: Page, lab: Lab, name: str, cells: int | None = None) -> None:
    """Open a notebook and run all its cells (``cells``: run the first ones with Shift+Enter,
    which keeps the last output in view)."""
    page = p.page
    page.goto(lab.notebook_url(name))
    page.wait_for_selector(".jp-Notebook", timeout=120_000)
    # the kernel is up when the status bar says Idle
    page.wait_for_selector("#jp-main-statusbar >> text=Idle", timeout=120_000)
    if cells is None:
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_text("Run All Cells", exact=True).click()
        return
    page.locator(".jp-Notebook .jp-Cell").first.click()
    for _ in range(cells):
        page.keyboard.press("Shift+Enter")


def counters(page: Any) -> dict[str, int]:
    out = {}
    for el in page.locator(".tl-live .tl-live-counter").all():
        name = el.get_attribute("data-name")
        text = el.locator(".tl-value").inner_text().replace(",", "")
        out[name] = int(float(text)) if re.fullmatch(r"-?[\d.]+", text) else -1
    return out


@pytest.mark.kafka
def test_live_dashboard_follows_a_running_system(
    browser_page: Page, lab: Lab, request: pytest.FixtureRequest
) -> None:
    p, page = browser_page, browser_page.page
    with marks_failure(request):
        # the cells up to the dashboard, which stays in view (the figure test uses Run All)
        open_and_run(p, lab, "05_live.ipynb", cells=3)
        page.wait_for_selector(".tl-live .tl-live-counter", timeout=120_000)
        page.wait_for_function(
            """() => { const e = document.querySelector('.tl-live [data-name=messages] .tl-value');
                       return e && parseInt(e.textContent.replace(/,/g, '')) > 0; }""",
            timeout=120_000,
        )
        first = counters(page)
        p.shot("first")
        time.sleep(8)
        second = counters(page)
        assert second["messages"] > first["messages"] > 0, (first, second)
        assert second["lag"] >= 0  # a bootstrap is given: the lag is known
        # pause stops the counters, resume starts them again
        page.locator(".tl-live button", has_text="pause").click()
        time.sleep(3)
        paused = counters(page)
        time.sleep(4)
        assert counters(page)["messages"] == paused["messages"]
        page.locator(".tl-live button", has_text="resume").click()
        page.wait_for_function(
            f"""() => parseInt(document.querySelector(
                   '.tl-live [data-name=messages] .tl-value').textContent.replace(/,/g, ''))
                   > {paused["messages"]}""",
            timeout=60_000,
        )
        p.shot("after", page.locator(".tl-live"))
        assert not p.problems, p.problems


FIGURE = ".tl-live .tl-live-figure .js-plotly-plot"


def figure_state(page: Any) -> dict[str, Any]:
    """What the dashboard figure draws: bar and line counts, the line paths, subplot titles."""
    return page.evaluate(
        """(sel) => { const plot = document.querySelector(sel);
            if (!plot) return {bars: 0, lines: 0, paths: [], titles: []};
            const paths = [...plot.querySelectorAll('g.trace.scatter path.js-line')]
                .map(p => p.getAttribute('d') || '').filter(d => d.length > 1);
            return {bars: plot.querySelectorAll('g.trace.bars path').length,
                    lines: paths.length, paths: paths,
                    titles: [...plot.querySelectorAll('.annotation-text')]
                        .map(t => t.textContent)}; }""",
        FIGURE,
    )


@pytest.mark.kafka
def test_live_dashboard_figure_is_drawn_and_updates(
    browser_page: Page, lab: Lab, request: pytest.FixtureRequest
) -> None:
    p, page = browser_page, browser_page.page
    with marks_failure(request):
        # "Run All": Lab follows the last cell, the dashboard is created out of view
        open_and_run(p, lab, "05_live.ipynb")
        page.wait_for_function(
            """() => { const e = document.querySelector('.tl-live [data-name=messages] .tl-value');
                       return e && parseInt(e.textContent.replace(/,/g, '')) > 0; }""",
            timeout=120_000,
        )
        page.locator(".tl-live .tl-live-figure").scroll_into_view_if_needed()
        page.wait_for_function(
            f"""() => {{ const p = document.querySelector('{FIGURE}');
                        return p && p.querySelectorAll('g.trace.bars path').length > 0
                            && p.querySelectorAll('g.trace.scatter path.js-line').length > 0; }}""",
            timeout=60_000,
        )
        first, drawn = counters(page), figure_state(page)
        p.shot("dashboard-first", page.locator(".tl-live"))
        time.sleep(8)
        second = counters(page)
        assert second["messages"] > first["messages"] > 0, (first, second)
        assert second["in_flight"] >= 0 and second["lag"] >= 0
        # the figure is redrawn with the new data: its lines change
        deadline = time.monotonic() + 60
        later = figure_state(page)
        while later["paths"] == drawn["paths"] and time.monotonic() < deadline:
            time.sleep(1)
            later = figure_state(page)
        assert later["paths"] != drawn["paths"], "the dashboard figure did not update"
        for state in (drawn, later):
            assert state["bars"] >= 1 and state["lines"] >= 2, state
            titles = " ".join(state["titles"])
            assert "failure rate per system" in titles and "traces in flight" in titles
        p.shot("dashboard-later", page.locator(".tl-live"))
        assert not p.problems, p.problems


def waterfall_title(page: Any) -> str:
    loc = page.locator(".tl-explorer .js-plotly-plot .gtitle")
    return (loc.first.text_content() or "") if loc.count() else ""


def wait_title(page: Any, not_equal: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        title = waterfall_title(page)
        if title and title != not_equal:
            return title
        time.sleep(0.3)
    raise AssertionError(f"waterfall title stayed {not_equal!r}")


def test_trace_explorer_reacts_to_filters_and_picks(
    browser_page: Page, lab: Lab, request: pytest.FixtureRequest
) -> None:
    p, page = browser_page, browser_page.page
    with marks_failure(request):
        open_and_run(p, lab, "03_traces.ipynb")
        page.wait_for_selector(".tl-explorer .js-plotly-plot .gtitle", timeout=180_000)
        explorer = page.locator(".tl-explorer")
        explorer.scroll_into_view_if_needed()
        first = wait_title(page, "")
        assert first.startswith("trace ")
        p.shot("start", explorer)
        # the notebook searches failures: the explorer starts with that filter
        outcome = explorer.locator(".widget-dropdown select").nth(1)
        assert outcome.input_value() == "FAILURE"
        outcome.select_option("SUCCESS")
        second = wait_title(page, first)
        # pick another trace from the list
        results = explorer.locator(".widget-select select")
        options = results.locator("option")
        assert options.count() > 2
        wanted = options.nth(2).get_attribute("value") or ""
        label = options.nth(2).inner_text()
        results.select_option(index=2)
        third = wait_title(page, second)
        assert label.replace("\xa0", " ").split(" | ")[0].strip() in third, (label, third)
        # nothing matches: the waterfall goes; a later change selects a trace again
        reason = explorer.locator("input[placeholder='failure reason contains']")
        reason.fill("zzz")
        reason.press("Enter")
        page.wait_for_function(
            "() => !document.querySelector('.tl-explorer .js-plotly-plot')", timeout=60_000
        )
        reason.fill("")
        reason.press("Enter")
        fourth = wait_title(page, "")
        assert fourth.startswith("trace ")
        # the "max ms" label is whole
        label_cut = page.evaluate(
            """() => [...document.querySelectorAll('.tl-explorer label')]
                    .filter(l => l.textContent.trim() === 'max ms')
                    .map(l => l.scrollWidth > l.clientWidth)"""
        )
        assert label_cut == [False]
        p.shot("end", explorer)
        assert wanted  # the option values are the correlation ids
        assert not p.problems, p.problems
