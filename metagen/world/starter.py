"""The world JSON Schema's path and a commented starter world."""

from __future__ import annotations

import json
from pathlib import Path

from metagen.text import id_from

_DATA = Path(__file__).parent.parent / "data"


def schema_path() -> Path:
    """Where the world JSON Schema (draft 2020-12) is installed."""
    return _DATA / "world.schema.json"


def starter_world(
    name: str, *, world_id: str | None = None, schema: str | None = None, file: str = "FILE"
) -> str:
    """A commented starter world (YAML text) that validates; `schema` goes in its schema line."""
    world_id = world_id or id_from(name)
    text = (_DATA / "starter-world.yaml").read_text(encoding="utf-8")
    replacements = {
        "__SCHEMA__": schema or str(schema_path()),
        "__FILE__": file,
        "__WORLD_ID__": '"null"' if world_id == "null" else world_id,  # bare, YAML reads it as no value
        "__WORLD_NAME__": json.dumps(" ".join(name.split()), ensure_ascii=False),  # JSON strings are YAML
    }
    for marker, value in replacements.items():
        text = text.replace(marker, value)
    return text
