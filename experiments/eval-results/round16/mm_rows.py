"""int4 kernel vs float32 / bfloat16 linear by rows, the default model's shapes (576 -> 3072 gate/up)."""
import statistics, time, torch
from metagen.linears import Int4Linear
torch.manual_seed(0)
lin = Int4Linear(576, 3072)
w = torch.randn(3072, 576) * 0.05
lin.load_state_dict(lin.quantize(w))
wf = lin.dequantized(); wb = wf.bfloat16()
def bench(f, n=200):
    for _ in range(10): f()
    ts = []
    for _ in range(n):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e6
for M in (1, 2, 4, 8, 16):
    xb = torch.randn(M, 576).bfloat16(); xf = xb.float()
    a = bench(lambda: lin(xb)); b = bench(lambda: torch.nn.functional.linear(xf, wf)); c = bench(lambda: torch.nn.functional.linear(xb, wb))
    print(f"M={M:2d} int4 {a:7.1f} us  fp32 {b:7.1f} us  bf16 {c:7.1f} us")
