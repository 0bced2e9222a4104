"""Write a copy of a metagen adapter whose LoRA update is `factor` times as large (alpha * factor):
the same A and B, the same rank and targets, so only the scale alpha / rank changes.

python experiments/eval-results/round29/scale_adapter.py IN.safetensors OUT.safetensors FACTOR
"""
import sys
from pathlib import Path

from safetensors import safe_open

from metagen.generator import save_aligned_safetensors

source, target, factor = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
with safe_open(source, "pt") as file:
    metadata = dict(file.metadata())
    tensors = {name: file.get_tensor(name) for name in file.keys()}
metadata["alpha"] = str(float(metadata["alpha"]) * factor)
save_aligned_safetensors(tensors, target, metadata)
print(f"{target}: alpha {metadata['alpha']} (rank {metadata['rank']})")
