"""metagen: worlds in YAML turned into stories, scenes and dialogue by a local transformer.

The public API is imported lazily so that `import metagen` (and `metagen --help`) stays
fast and does not import torch.
"""

from __future__ import annotations

import os

# PyTorch's OpenMP worker threads spin while they wait for work. When the cores are busy
# (other jobs, or several metagen processes started by a batch script) spinning threads
# starve each other: one decoding step measured 4.9 s instead of 0.23 s with sleeping
# waiters on a loaded 2-core machine. libgomp reads this when torch is first imported,
# so it is set here, before any module imports torch; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.30.0"

_LAZY = {
    "load_world": ("metagen.world", "load_world"),
    "load_model": ("metagen.generator", "load_model"),
    "Generator": ("metagen.generator", "Generator"),
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
