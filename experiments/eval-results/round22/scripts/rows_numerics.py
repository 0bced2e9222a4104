"""Does a row's logits depend on how many rows decode beside it? (default int4 model)"""
import torch
from metagen.generator import load_model
from metagen.search import _prefill
m = load_model()
model, tok = m.model, m.tokenizer
prompt = tok.encode("The lantern swung over the crooked kettle, and the innkeeper said")
torch.manual_seed(0)
for rows_before, keep in [(4, [0, 1, 3]), (4, [2]), (8, [0, 5])]:
    cache, logits = _prefill(model, [prompt] * rows_before, torch.tensor([prompt] * rows_before), None, 8, None)
    nxt = torch.randint(0, 1000, (rows_before,))
    full = model(nxt[:, None], cache)[:, -1]
    cache2, _ = _prefill(model, [prompt] * rows_before, torch.tensor([prompt] * rows_before), None, 8, None)
    k = torch.tensor(keep); cache2.keep_rows(k)
    part = model(nxt[k][:, None], cache2)[:, -1]
    d = (full[k] - part).abs().max().item()
    print(f"{rows_before} rows -> keep {keep}: max |logit diff| {d:.3g}, argmax equal {bool((full[k].argmax(-1)==part.argmax(-1)).all())}")
