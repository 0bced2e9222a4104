"""The output head (int8, 49152x576) and the big int4 matmul at 1 and 2 threads, alternating,
after importing metagen (OMP_WAIT_POLICY=PASSIVE as metagen runs)."""
import statistics, time
import metagen  # noqa: F401  (sets OMP_WAIT_POLICY)
import torch
from metagen.linears import Int4Linear, Int8Linear
torch.manual_seed(0)
def build(cls, inf, outf):
    lin = cls(inf, outf)
    lin.load_state_dict(lin.quantize(torch.randn(outf, inf) * 0.05), assign=True)
    return lin
cases = {"int8 head 576x49152": build(Int8Linear, 576, 49152),
         "int4 head 576x49152": build(Int4Linear, 576, 49152),
         "int4 w13 576x3072": build(Int4Linear, 576, 3072)}
for name, lin in cases.items():
    for rows in (1, 4):
        x = torch.randn(rows, 1, 576).to(torch.bfloat16)
        ts = {1: [], 2: []}
        for _ in range(40):
            for n in (1, 2):
                torch.set_num_threads(n)
                s = time.perf_counter(); lin(x); ts[n].append(time.perf_counter() - s)
        a, b = statistics.median(ts[1]) * 1e3, statistics.median(ts[2]) * 1e3
        print(f"{name} rows={rows}: 1 thread {a:.3f} ms, 2 threads {b:.3f} ms ({a/b:.2f}x)", flush=True)
