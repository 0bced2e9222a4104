import torch, time, statistics
torch.set_num_threads(2)
from metagen.linears import Int4Linear, Int8Linear
torch.manual_seed(0)
for (inf, outf) in [(576, 3072), (1536, 576), (576, 960), (576, 49152)]:
    w = torch.randn(outf, inf) * 0.05
    for cls in (Int4Linear, Int8Linear):
        if cls is Int4Linear and outf == 49152: continue
        lin = cls(inf, outf)
        lin.load_state_dict(lin.quantize(w), assign=True) if hasattr(lin, 'load_state_dict') else None
        row = []
        for M in (1, 2, 4, 8, 16):
            x = torch.randn(M, 1, inf).to(torch.bfloat16)
            for _ in range(5): lin(x)
            ts = []
            for _ in range(30):
                t = time.perf_counter(); lin(x); ts.append(time.perf_counter() - t)
            row.append(f"M={M}:{statistics.median(ts)*1e3:.3f}ms")
        print(cls.__name__, inf, outf, " ".join(row), flush=True)
