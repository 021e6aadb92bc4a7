"""Writing changed settings back to the station's TOML settings file.

Only the keys that were changed are written; every other line of an existing file keeps its
value (comments are not preserved). The file is replaced atomically.
"""

from __future__ import annotations

import json
import os
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a valid TOML basic string


def dumps(document: Mapping[str, Any]) -> str:
    """Serialise a settings document (scalars, lists, and one level of tables) as TOML."""
    lines: list[str] = []
    tables = {k: v for k, v in document.items() if isinstance(v, Mapping)}
    for key, value in document.items():
        if key not in tables and value is not None:
            lines.append(f"{key} = {_value(value)}")
    for name, table in tables.items():
        lines.append("")
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {_value(v)}" for k, v in table.items() if v is not None)
    return "\n".join(lines).lstrip("\n") + "\n"


def update_settings_file(path: Path, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``changes`` (top-level keys, or section → keys) into the TOML file at ``path``.

    Returns:
        The merged document as written.
    """
    document: dict[str, Any] = {}
    if path.is_file():
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if isinstance(value, Mapping):
            section = dict(document.get(key) or {})
            section.update(value)
            document[key] = section
        else:
            document[key] = str(value) if isinstance(value, Path) else value
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".settings-", suffix=".toml", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(dumps(document))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return document
