"""Save a trained adapter's tensors in bfloat16 (what ships), keeping its metadata."""
import sys, json
import torch
from safetensors import safe_open
from pathlib import Path
from metagen.lora import AdapterConfig, save_adapter
src, dst = sys.argv[1], sys.argv[2]
with safe_open(src, "pt") as f:
    meta = f.metadata()
    tensors = {k: f.get_tensor(k) for k in f.keys()}
print(meta)
cfg = AdapterConfig(rank=int(meta["rank"]), alpha=float(meta["alpha"]), targets=tuple(json.loads(meta["targets"])))
print(save_adapter(Path(dst), tensors, cfg, meta["base_model_sha256"], dtype=torch.bfloat16))
