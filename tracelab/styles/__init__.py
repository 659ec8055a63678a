"""Declared log styles: the one owner of how every system's lines look.

- :mod:`tracelab.styles.model` — the typed core and the validation of a style file;
- :mod:`tracelab.styles.compile` — the :class:`Registry`: dispatch and parse;
- :mod:`tracelab.styles.emit` — write lines of a style (the simulator);
- :mod:`tracelab.styles.times` — timestamps of the declared kinds;
- :mod:`tracelab.styles.sources` — built-ins, files, ``$TRACELAB_STYLES``, a flow's styles.

Owns: what a style is, how a line of it is read and written, where style files come from.
May import: the ground floor only (``config``, ``errors``, ``timefmt``, ``record``); the parser
(``ingest``) and the simulator (``simulate``) both derive from this package.

Example::

    from tracelab.styles import load_registry
    registry = load_registry(["data/styles/examples.yaml"])
    registry.parse(b'{"@timestamp": "2025-05-04T10:30:00Z", ...}')
"""

from tracelab.styles.compile import Parsed, Registry, loads_json
from tracelab.styles.model import BAD, DETAIL, EVENT, Part, Style, parse_styles
from tracelab.styles.sources import (
    ENV_VAR,
    builtin_styles,
    default_registry,
    load_registry,
    read_style_file,
)

__all__ = [
    "BAD",
    "DETAIL",
    "ENV_VAR",
    "EVENT",
    "Parsed",
    "Part",
    "Registry",
    "Style",
    "builtin_styles",
    "default_registry",
    "load_registry",
    "loads_json",
    "parse_styles",
    "read_style_file",
]
