"""Where styles come from: the built-ins shipped with the package, style files (``--styles``),
``$TRACELAB_STYLES`` (paths separated by ``os.pathsep``) and a flow file's ``styles:``.

Order, which decides who wins where two styles claim one message: the files given on the
command line, then ``$TRACELAB_STYLES``, then a flow's own styles, then the built-ins.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from tracelab.errors import StyleError
from tracelab.styles.compile import Registry
from tracelab.styles.model import Style, parse_styles

__all__ = [
    "ENV_VAR",
    "builtin_styles",
    "default_registry",
    "env_files",
    "load_registry",
    "read_style_file",
]

ENV_VAR = "TRACELAB_STYLES"
_BUILTIN = "builtin.yaml"


def _yaml(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot parse"
        raise StyleError(f"{source}: not valid YAML{where}: {problem}") from None


def read_style_file(path: str | Path) -> Any:
    """The YAML content of a style file, or a StyleError naming the file.

    Example: ``read_style_file("data/styles/examples.yaml")["styles"].keys()``
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StyleError(f"{p}: style file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StyleError(f"{p}: cannot read style file: {exc}") from None
    return _yaml(text, str(p))


@lru_cache(maxsize=1)
def _builtin_data() -> Any:
    text = resources.files("tracelab.styles").joinpath(_BUILTIN).read_text(encoding="utf-8")
    return _yaml(text, f"<built-in {_BUILTIN}>")


def builtin_styles(first_order: int = 0) -> list[Style]:
    """The seed's four styles, declared in ``tracelab/styles/builtin.yaml``.

    Example: ``[s.name for s in builtin_styles()]`` -> ``['json-separate', 'json-inline', ...]``
    """
    return parse_styles(_builtin_data(), "<built-in>", first_order)


def env_files() -> list[str]:
    """The style files named by ``$TRACELAB_STYLES`` (``os.pathsep``-separated).

    Example: ``env_files()`` -> ``['/etc/tracelab/styles.yaml']``
    """
    value = os.environ.get(ENV_VAR, "")
    return [p for p in value.split(os.pathsep) if p.strip()]


def load_registry(
    files: Sequence[str | Path] = (),
    *,
    env: bool = True,
    inline: Sequence[tuple[Any, str]] = (),
) -> Registry:
    """A registry of the styles of ``files``, ``$TRACELAB_STYLES`` (``env``), ``inline``
    ``(data, source)`` pairs (a flow's styles), then the built-ins; the first declared wins.

    A file given twice (also through the variable) is read once. Raises StyleError (one line
    naming file, style and key) for any invalid declaration.

    Example: ``load_registry(["data/styles/examples.yaml"]).styles["shop-ecs"].system``
    """
    paths: list[str] = [str(f) for f in files]
    if env:
        paths += env_files()
    seen: set[str] = set()
    styles: list[Style] = []
    loaded: list[str] = []
    for path in paths:
        key = str(Path(path).resolve())
        if key in seen:
            continue
        seen.add(key)
        styles += parse_styles(read_style_file(path), path, len(styles))
        loaded.append(key)
    for data, source in inline:
        styles += parse_styles(data, source, len(styles))
    styles += builtin_styles(len(styles))
    return Registry(styles, loaded)


@lru_cache(maxsize=8)
def _cached(files: tuple[str, ...]) -> Registry:
    return load_registry(files, env=False)


def default_registry() -> Registry:
    """The built-ins plus ``$TRACELAB_STYLES`` (cached per value of the variable).

    Example: ``default_registry().parse(b"...")``
    """
    return _cached(tuple(env_files()))
