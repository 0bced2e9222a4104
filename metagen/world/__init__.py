"""World files: YAML -> frozen dataclasses, with validation that names file:line:column.

`load_world(path)` reads a world file and the files it includes, checks every section and
raises one WorldError that lists every problem as `file:line:col: field.path: what (expected)`.
One module a step: types (the dataclasses), safe_yaml (bounded composition), validate (value
readers), sections (one reader per section), includes (files), load (the whole), starter.
"""

from metagen.text import did_you_mean, slugify
from metagen.world import types
from metagen.world.includes import MAX_FILE_BYTES
from metagen.world.load import MAX_PROBLEMS, load_world
from metagen.world.safe_yaml import (
    MAX_ALIASES,
    MAX_DEPTH,
    MAX_NODES,
    YamlRefused,
    compose_yaml,
    construct_plain,
    construct_scalar,
)
from metagen.world.starter import schema_path, starter_world
from metagen.world.types import *  # noqa: F403 (types.__all__: the dataclasses and their values)
from metagen.world.validate import MAX_INT

__all__ = [
    "MAX_ALIASES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_INT",
    "MAX_NODES",
    "MAX_PROBLEMS",
    "YamlRefused",
    "compose_yaml",
    "construct_plain",
    "construct_scalar",
    "did_you_mean",
    "load_world",
    "schema_path",
    "slugify",
    "starter_world",
]
__all__ += types.__all__
