import torch, metagen
from metagen.linears import make_linear
torch.manual_seed(0)
torch.set_num_threads(2)
for (k, n) in [(576, 1728), (576, 576), (576, 3072), (1536, 576)]:
    lin = make_linear("int4", k, n)
    lin.load_state_dict(lin.quantize(torch.randn(n, k) * 0.05), assign=True)
    for m in (2, 4, 8, 17, 40, 63):
        x = torch.randn(m, k).bfloat16()
        ref = lin(x)
        bad = sum(not torch.equal(ref, lin(x)) for _ in range(300))
        if bad: print("int4", k, n, "M", m, "differing", bad, "of 300")
print("done")
