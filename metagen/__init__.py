"""metagen: worlds in YAML turned into stories, scenes and dialogue by a local transformer.

The public API is imported lazily so that `import metagen` (and `metagen --help`) stays
fast and does not import torch.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "load_world": ("metagen.world", "load_world"),
    "load_model": ("metagen.generate", "load_model"),
    "Generator": ("metagen.generate", "Generator"),
    "GenerationConfig": ("metagen.config", "GenerationConfig"),
    "MetagenError": ("metagen.errors", "MetagenError"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        return getattr(importlib.import_module(module_name), attr)
    raise AttributeError(f"module 'metagen' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
