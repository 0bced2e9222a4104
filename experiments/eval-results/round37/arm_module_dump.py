import sys, torch
sys.path.insert(0, sys.argv[2])
from metagen.model import Transformer
from tests.conftest import tiny_args
from tests.test_model import GOLDEN_SHORT
args = tiny_args(304)
w = torch.load(sys.argv[3])
model = Transformer.from_weights(args, {k: v.clone() for k, v in w.items()}, "float32")
rec = {}
for name, mod in model.named_modules():
    if name:
        mod.register_forward_hook(lambda m, i, o, name=name: rec.setdefault(name, o.detach().clone() if torch.is_tensor(o) else None))
tokens = torch.tensor([GOLDEN_SHORT]); cache = model.new_cache(1, tokens.shape[1]+16)
model(tokens, cache, last_only=True)
# plain sdpa check
q = torch.randn(1, 9, 8, 64, generator=torch.Generator().manual_seed(0)); k = torch.randn(1, 9, 8, 64, generator=torch.Generator().manual_seed(1))
rec["sdpa"] = torch.nn.functional.scaled_dot_product_attention(q, q, k, is_causal=True)
torch.save(rec, sys.argv[1])
