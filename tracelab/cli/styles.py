"""``tracelab styles check FILE`` and ``tracelab styles test FILE LOGFILE``: the debugging loop
for declared log styles, and the ``--styles FILE`` option other subcommands share."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tracelab.styles import BAD, DETAIL, EVENT, Registry, load_registry

__all__ = ["add_parser", "add_styles_option", "describe", "registry_from_args", "run"]


def add_styles_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--styles FILE`` (repeatable): style files read before ``$TRACELAB_STYLES`` and the
    built-ins; where two styles claim one message the first declared wins.

    Example: ``add_styles_option(subparsers.add_parser("normalize"))``
    """
    parser.add_argument(
        "--styles",
        action="append",
        default=[],
        metavar="FILE",
        help="log style file (YAML; repeatable; also $TRACELAB_STYLES); built-ins always apply",
    )


def registry_from_args(args: argparse.Namespace) -> Registry:
    """The registry of ``--styles`` files, ``$TRACELAB_STYLES`` and the built-ins.

    Example: ``registry_from_args(argparse.Namespace(styles=["mine.yaml"]))``
    """
    return load_registry(getattr(args, "styles", None) or [])


def add_parser(subparsers: Any) -> None:
    """Register ``styles check`` and ``styles test``.

    Example: ``tracelab styles check data/styles/examples.yaml``
    """
    p = subparsers.add_parser(
        "styles",
        help="check a log style file, or test it on a log file line by line",
        description="Declared log styles: validate a style file, or see which style takes each "
        "line of a log file and what it produces.",
    )
    sub = p.add_subparsers(dest="styles_command", metavar="ACTION", required=True)
    c = sub.add_parser("check", help="validate FILE; print one line per style, parsed back")
    c.add_argument("file", metavar="FILE", help="style file (YAML)")
    c.set_defaults(func=run_check)
    t = sub.add_parser("test", help="which style takes each line of LOGFILE, and the fields")
    t.add_argument("file", metavar="FILE", help="style file (YAML)")
    t.add_argument("logfile", metavar="LOGFILE", help="raw log file, one message per line")
    t.set_defaults(func=run_test)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Dispatch to ``check`` or ``test``."""
    return int(args.func(args))


def describe(parsed: Any) -> str:
    """One readable line of a parsed tuple.

    Example: ``describe((1, "payments", "c1", "declined", None))``
    """
    if parsed is None:
        return "blank (not a message)"
    if parsed[0] == EVENT:
        _, system, cp, ts, status, cid, reason, state, attrs = parsed
        out = f"event system={system} checkpoint={cp} timestamp={ts} status={status} id={cid}"
        if reason is not None:
            out += f" reason={reason!r}"
        if state is not None:
            out += f" join={state}"
        if attrs:
            out += f" attributes={attrs}"
        return out
    if parsed[0] == DETAIL:
        _, system, cid, reason, ts = parsed
        when = f" timestamp={ts}" if ts else " (joins by arrival)"
        return f"detail system={system} id={cid} reason={reason!r}{when}"
    return f"quarantined: {parsed[1]}"


def run_check(args: argparse.Namespace) -> int:
    """Validate a style file; print each of its styles with the lines it writes, read back."""
    registry = load_registry([args.file], env=False)
    mine = [s for s in registry.styles.values() if s.source == args.file]
    print(f"{args.file}: {len(mine)} style(s), valid (then the {len(registry.styles) - len(mine)}"
          " built-ins; the first declared wins)")  # fmt: skip
    for style in mine:
        system = style.system or "sample_system"
        detail = f", detail joined {style.join}" if style.detail is not None else ""
        print(f"\n{style.name}  ({style.event.format}, system {style.output_system(system)}"
              f"{detail})")  # fmt: skip
        for what, line, _own in registry.sample(style, system):
            taken, parsed = registry.explain(line.encode("utf-8"))
            print(f"  {what:<8} {line}")
            note = "" if taken == style.name else f"   [taken by {taken}, declared earlier]"
            print(f"  {'':<8} -> {describe(parsed)}{note}")
    return 0


def run_test(args: argparse.Namespace) -> int:
    """Print, line by line, which style took each line of LOGFILE and what it produced."""
    from tracelab.errors import InputError

    registry = load_registry([args.file], env=False)
    try:
        fh = open(args.logfile, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise InputError(f"cannot read {args.logfile}: {exc.strerror}") from None
    counts: dict[str, int] = {}
    with fh:
        for n, raw in enumerate(fh, 1):
            taken, parsed = registry.explain(raw.rstrip(b"\r\n"))
            if parsed is None:
                continue
            name = taken or "-"
            if parsed[0] == BAD:
                name = "quarantine"
            counts[name] = counts.get(name, 0) + 1
            print(f"{n}: {name}: {describe(parsed)}")
    summary = ", ".join(f"{k} {v}" for k, v in counts.items())
    print(f"lines by style: {summary or 'none'}")
    sys.stdout.flush()
    return 0
