"""The style registry: declarations, dispatch (first declared wins, indexes), emit -> parse for
random declared styles, every kind of bad style file, and the `styles` commands."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracelab.errors import StyleError
from tracelab.styles import BAD, DETAIL, EVENT, Registry, builtin_styles, load_registry
from tracelab.styles import parse_styles as parse_styles_
from tracelab.styles.compile import _logfmt_pairs, _logfmt_unquoted, logfmt_decode
from tracelab.styles.emit import fill, logfmt_value, render, split
from tracelab.styles.times import writer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "data" / "styles" / "examples.yaml"
MS = 1746354600123


def registry(styles: dict[str, Any]) -> Registry:
    """A registry of ``styles`` (declared first) and the built-ins."""
    mine = parse_styles_({"styles": styles}, "t.yaml")
    return Registry([*mine, *builtin_styles(len(mine))])


def write(reg: Registry, name: str, system: str, detail: bool = False, **values: Any) -> bytes:
    style = reg.styles[name]
    part = style.detail if detail else style.event
    line = fill(split(render(style, part, system=system, **values)),
                writer(part.timestamp, lambda ms: "2025-05-04T10:30:00.123")(MS), "abc-1")  # noqa: E501  # fmt: skip
    return line.encode()


# -- the examples and the built-ins ----------------------------------------------------------


def test_examples_read_back_what_they_write() -> None:
    reg = load_registry([EXAMPLES], env=False)
    got = reg.parse(write(reg, "checkout-ecs", "checkout", checkpoint="pay", status="FAILURE",
                          reason='Card "x" declined'))  # fmt: skip
    assert got == (EVENT, "checkout", "pay", "2025-05-04T10:30:00.123000Z", "FAILURE", "abc-1",
                   'Card "x" declined', "inline", None)  # fmt: skip
    got = reg.parse(write(reg, "billing-logfmt", "billing", checkpoint="post", status="SUCCESS"))
    assert got[:6] == (EVENT, "billing", "post", "2025-05-04T10:30:00.123000Z", "SUCCESS", "abc-1")
    got = reg.parse(write(reg, "shipping-text", "x", detail=True, reason="Carrier - 503"))
    assert got == (DETAIL, "shipping", "abc-1", "Carrier - 503", "2025-05-04T10:30:00.123000Z")
    assert reg.parse(write(reg, "shipping-text", "x", checkpoint="a", status="FAILURE"))[7] == (
        "awaiting_detail"
    )


def test_nested_json_keeps_unmapped_fields_as_attributes() -> None:
    reg = load_registry([EXAMPLES], env=False)
    line = {
        "@timestamp": "2025-05-04T10:30:00Z", "service": {"name": "checkout", "version": "2"},
        "event": {"dataset": "checkout.audit", "action": "a", "outcome": "success"},
        "trace": {"id": "t"}, "host": {"name": "h1"},
    }  # fmt: skip
    got = reg.parse(json.dumps(line).encode())
    assert got[1:6] == ("checkout", "a", "2025-05-04T10:30:00.000000Z", "SUCCESS", "t")
    assert json.loads(got[8]) == {"service": {"version": "2"}, "host": {"name": "h1"}}


def test_logfmt_rules() -> None:
    assert logfmt_decode('a=1 b="x \\"y\\" z" c d= e="" ') == {
        "a": "1", "b": 'x "y" z', "c": True, "d": "", "e": "",
    }  # fmt: skip
    assert logfmt_decode('a="unterminated') is None
    assert logfmt_decode("a=b=c") == {"a": "b=c"}  # lenient, like most readers (base64 '==')
    assert logfmt_decode('a="x"y') is None
    tricky = 'q " and \\ ok'
    assert logfmt_decode("k=" + logfmt_value(tricky)) == {"k": tricky}


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=" \t=ab_\u00a0\u2003\x1c\x85é.-1", max_size=30))
def test_logfmt_without_quotes_reads_as_the_pair_by_pair_decoder(text: str) -> None:
    """The fast path for lines without ``"`` (split on whitespace) gives exactly what the
    pair-by-pair decoder gives: the same pairs, the same first-wins duplicates, the same refusals
    (a word starting with ``=``), with every kind of whitespace ``re``'s ``\\s`` knows."""
    assert _logfmt_unquoted(text) == _logfmt_pairs(text, 0, len(text))
    assert logfmt_decode(" " + text, 1) == _logfmt_pairs(text, 0, len(text))


def test_first_declared_wins_and_dispatch_uses_the_match_index() -> None:
    a = {"format": "json", "system": "a", "match": {"svc": "x"},
         "fields": {"checkpoint_id": "cp", "status": "st", "timestamp": "ts",
                    "correlation_id": "id", "failure_reason": "why"}}  # fmt: skip
    b = {**a, "system": "b"}
    reg = registry({"first": a, "second": b})
    line = b'{"svc": "x", "cp": "C", "st": "SUCCESS", "ts": "2025-05-04T10:30:00", "id": "i"}'
    assert reg.explain(line)[0] == "first"
    assert reg.parse(line)[1] == "a"
    other = line.replace(b'"x"', b'"y"')  # claimed by the built-in JSON style, which needs system
    assert reg.explain(other) == ("json-separate", (BAD, "missing system"))
    assert reg.explain(b"plain words") == (None, (BAD, "no style matched"))
    # 20 styles indexed by one match field: a message is checked against one of them
    many = registry({f"s{i}": {**a, "system": f"s{i}", "match": {"svc": f"v{i}"}}
                     for i in range(20)})  # fmt: skip
    obj = json.loads(line.replace(b'"x"', b'"v17"'))
    got = [(r.name, r.kind) for r in many._json_candidates(obj)]
    assert got == [("s17", EVENT), ("json-separate", EVENT), ("json-separate", DETAIL),
                   ("json-inline", EVENT)]  # fmt: skip


def test_a_regex_style_is_tried_only_where_its_literal_is() -> None:
    shop = {"format": "regex", "system": "shop",
            "pattern": r"SHOP (?P<timestamp>\S+) (?P<checkpoint_id>\w+) (?P<status>\w+) (?P<correlation_id>\S+)",  # noqa: E501
            "template": "SHOP {timestamp} {checkpoint_id} {status} {correlation_id}"}  # fmt: skip
    reg = registry({"shop": shop})
    line = b"SHOP 2025-05-04T10:30:00 pay SUCCESS c1"
    assert reg.explain(line)[0] == "shop"
    (r,) = [r for r in reg._regex if r.name == "shop"]
    assert r.prefix == "SHOP "
    assert r not in reg._regex_candidates("2")  # a line starting otherwise never tries it


# -- emit -> parse for random declared styles and values -------------------------------------

_KEY = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
_VALUE = (
    st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=40)
    .map(str.strip)
    .filter(bool)
)
_CHECKPOINT = st.text("ABCXYZabc019_.-", min_size=1, max_size=20).filter(lambda s: s[0] != "-")
_CID = st.text("0123456789abcdef-", min_size=1, max_size=36)
_TIME = st.sampled_from(["iso8601", "epoch_s", "epoch_ms", "%Y-%m-%d %H:%M:%S.%f"])
_SEPS = st.sampled_from([" | ", " :: ", " ~ ", " >> "])


@st.composite
def declared_style(draw: st.DrawFn) -> dict[str, Any]:
    fmt = draw(st.sampled_from(["json", "logfmt", "regex"]))
    time_kind = draw(_TIME)
    names = ["checkpoint_id", "status", "timestamp", "correlation_id", "failure_reason"]
    style: dict[str, Any] = {"format": fmt, "system": "svc", "timestamp": time_kind,
                             "status": {"SUCCESS": [draw(st.sampled_from(["ok", "done"]))],
                                        "FAILURE": [draw(st.sampled_from(["ko", "err"]))]}}  # noqa: E501  # fmt: skip
    if fmt == "regex":
        order = draw(st.permutations(names[:4]))
        sep = draw(_SEPS)
        groups = {
            "checkpoint_id": r"[A-Za-z0-9_.-]+", "status": r"\w+", "correlation_id": r"[0-9a-f-]+",
            "timestamp": r"\d{4}-\d\d-\d\d \S+" if "%" in time_kind else r"[0-9.T:-]+",
        }  # fmt: skip
        esc = re.escape(sep)
        style["pattern"] = "TAG" + esc.join(f"(?P<{n}>{groups[n]})" for n in order) + (
            f"(?:{esc}(?P<failure_reason>.*+))?"
        )  # fmt: skip
        style["template"] = "TAG" + sep.join(f"{{{n}}}" for n in order) + (
            f"[{sep}{{failure_reason}}]"
        )  # fmt: skip
        return style
    keys = draw(st.lists(_KEY, min_size=6, max_size=6, unique=True))
    nested = fmt == "json" and draw(st.booleans())
    paths = [f"{k}.{keys[5]}" if nested and i % 2 else k for i, k in enumerate(keys[:5])]
    style["fields"] = dict(zip(names, paths, strict=True))
    # the match path must not be one of the field paths (``m`` may be a drawn key): nest the
    # sixth key under itself, which no field path can be
    style["match"] = {keys[5] if not nested else f"{keys[5]}.{keys[5]}": "tag"}
    return style


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    declared_style(), _CHECKPOINT, st.sampled_from(["SUCCESS", "FAILURE"]), _CID, _VALUE,
    st.integers(946684800000, 4102444800000),
)  # fmt: skip
def test_emit_then_parse_gives_the_values_back(
    decl: dict[str, Any], checkpoint: str, status: str, cid: str, reason: str, ms: int
) -> None:
    reg = registry({"mine": decl})
    style = reg.styles["mine"]
    inline = reason if status == "FAILURE" else None
    tpl = split(render(style, style.event, system="svc", checkpoint=checkpoint, status=status,
                       reason=inline))  # fmt: skip
    line = fill(tpl, writer(style.event.timestamp, lambda m: f"{_iso(m)}")(ms), cid)
    taken, got = reg.explain(line.encode())
    assert taken == "mine", (line, got)
    want_ts = _iso(ms) + "000Z"
    assert got == (EVENT, "svc", checkpoint, want_ts, status, cid, inline,
                   "inline" if inline else None, None), line  # fmt: skip


def _iso(ms: int) -> str:
    from tracelab.simulate.emitters import format_ms

    return format_ms(ms)


# -- bad style files: one clear line, exit 1, nothing written --------------------------------

GOOD = {
    "format": "regex", "system": "shop",
    "pattern": r"(?P<timestamp>\S+) (?P<checkpoint_id>\w+) (?P<status>\w+) (?P<correlation_id>\S+)",
    "template": "{timestamp} {checkpoint_id} {status} {correlation_id}",
}  # fmt: skip
BAD_CASES = [
    ("unknown format", {**GOOD, "format": "xml"}, "style shop: format: must be one of json"),
    ("no correlation_id group", {**GOOD, "pattern": r"(?P<timestamp>\S+) (?P<checkpoint_id>\w+) (?P<status>\w+) \S+"},  # noqa: E501
     "style shop: pattern: has no (?P<correlation_id>...) group"),
    ("regex does not compile", {**GOOD, "pattern": r"(?P<timestamp>\S+"},
     "style shop: pattern: does not compile"),
    ("a value both SUCCESS and FAILURE", {**GOOD, "status": {"SUCCESS": ["ok"], "FAILURE": ["OK"]}},
     "style shop: status.FAILURE: 'OK' is listed as both SUCCESS and FAILURE"),
    ("unknown join mode", {**GOOD, "detail": {"pattern": r"(?P<correlation_id>\S+) (?P<failure_reason>.*)",  # noqa: E501
                                              "join": "closest"}},
     "style shop: detail.join: must be one of nearest_before, oldest_unexplained"),
    ("template not round-tripping", {**GOOD, "template": "{timestamp}  {checkpoint_id} {status} {correlation_id}"},  # noqa: E501
     "style shop: template: writes"),
    ("unknown key", {**GOOD, "colour": "red"}, "style shop: colour: unknown key"),
    ("unknown placeholder", {**GOOD, "template": "{timestamp} {nope} {correlation_id}"},
     "style shop: template: unknown placeholder {nope}"),
    ("json without a required field", {"format": "json", "system": "shop", "fields": {"status": "s"}},  # noqa: E501
     "style shop: fields.checkpoint_id: required field is not mapped"),
    ("bad timestamp kind", {**GOOD, "timestamp": "unix"}, "style shop: timestamp: must be iso8601"),
    ("nearest_before without a time", {**GOOD, "detail": {"pattern": r"(?P<correlation_id>\S+) (?P<failure_reason>.*)",  # noqa: E501
                                                         "join": "nearest_before"}},
     "style shop: detail.join: nearest_before needs a timestamp"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "decl", "needle"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_style_file_one_line_exit_1_nothing_written(
    case: str, decl: dict[str, Any], needle: str, tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"styles": {"shop": decl}}), encoding="utf-8")
    with pytest.raises(StyleError, match="^" + str(path).replace(".", r"\.")):
        load_registry([path], env=False)
    log = tmp_path / "in.log"
    log.write_text('{"system": "inventory"}\n', encoding="utf-8")
    db = tmp_path / "x.db"
    for argv in (["normalize", str(log), "--db", str(db), "--styles", str(path)],
                 ["styles", "check", str(path)], ["styles", "test", str(path), str(log)]):  # noqa: E501  # fmt: skip
        proc = subprocess.run(
            [sys.executable, "-m", "tracelab", *argv], capture_output=True, text=True, cwd=ROOT
        )
        assert proc.returncode == 1, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert lines[0].startswith(f"tracelab: error: {path}: ") and needle in lines[0], lines[0]
    assert not db.exists()


def test_bad_yaml_and_missing_file_and_bad_env(tmp_path: Path) -> None:
    bad = tmp_path / "b.yaml"
    bad.write_text("styles: {a: [1, 2\n", encoding="utf-8")
    with pytest.raises(StyleError, match="not valid YAML"):
        load_registry([bad], env=False)
    with pytest.raises(StyleError, match="style file not found"):
        load_registry([tmp_path / "none.yaml"], env=False)
    env = {"TRACELAB_STYLES": str(bad), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "tracelab", "normalize", str(bad), "--db",
                           str(tmp_path / "x.db")], capture_output=True, text=True, env=env,
                          cwd=ROOT)  # fmt: skip
    assert proc.returncode == 1 and "not valid YAML" in proc.stderr
    assert not (tmp_path / "x.db").exists()


def test_a_flow_refuses_a_binding_its_lines_do_not_survive() -> None:
    from tracelab.errors import FlowError
    from tracelab.simulate.flows import parse_flow

    flow = {
        "styles": {"early": {"format": "json", "fields": {
            "system_id": "system", "checkpoint_id": "checkpoint", "status": "status",
            "timestamp": "timestamp", "correlation_id": "correlation_id"}}},
        "systems": {"a": {"style": "json-inline", "checkpoints": [
            {"name": "C", "failure_probability": 0.5, "reasons": ["R"]}]}},
        "routing": {"entry": ["a"]},
    }  # fmt: skip
    with pytest.raises(
        FlowError, match="systems.a.style: a in style json-inline writes .* but style early reads"
    ):
        parse_flow(flow)


# -- the commands ----------------------------------------------------------------------------


def test_styles_check_and_test_commands(tmp_path: Path) -> None:
    def run(*a: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tracelab", *a], capture_output=True,
                              text=True, cwd=ROOT)  # fmt: skip

    out = run("styles", "check", str(EXAMPLES))
    assert out.returncode == 0, out.stderr
    assert "3 style(s), valid" in out.stdout
    for name in ("checkout-ecs", "billing-logfmt", "shipping-text"):
        assert name in out.stdout
    assert "taken by" not in out.stdout
    log = tmp_path / "mixed.log"
    log.write_text(
        "1746354600123 shipping pack done trace=ab-1\n"
        'component=ledger app=billing step=post result=failed ts=1746354600.5 trace_id=t err="no"\n'
        "2025-05-04T10:30:00 ORDER: A - SUCCESS (ID: x)\n"
        "hello\n",
        encoding="utf-8",
    )
    out = run("styles", "test", str(EXAMPLES), str(log))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("1: shipping-text: event system=shipping checkpoint=pack")
    assert (
        lines[1].startswith("2: billing-logfmt: event system=billing") and "reason='no'" in lines[1]
    )
    assert lines[2].startswith("3: text-separate: event system=orders")
    assert lines[3] == "4: quarantine: quarantined: no style matched"


def test_normalize_with_styles_quarantines_unclaimed(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("1746354600123 shipping pack done trace=ab-1\nplain words\n", encoding="utf-8")
    db = tmp_path / "x.db"
    proc = subprocess.run([sys.executable, "-m", "tracelab", "normalize", str(log), "--db", str(db),
                           "--styles", str(EXAMPLES), "--json"], capture_output=True, text=True,
                          cwd=ROOT)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["events"] == 1
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT reason FROM quarantine").fetchall() == [("no style matched",)]
