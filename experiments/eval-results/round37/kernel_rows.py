import time, torch, statistics
from metagen.linears import Int4Linear, Int8Linear
torch.manual_seed(0)
shapes=[(576,1536),(1536,576),(576,576),(576,192)]
def bench(f, n=300):
    for _ in range(20): f()
    ts=[]
    for _ in range(5):
        t=time.perf_counter()
        for _ in range(n): f()
        ts.append((time.perf_counter()-t)/n*1e6)
    return statistics.median(ts)
for th in (1,2):
    torch.set_num_threads(th)
    print("threads",th)
    for (i,o) in shapes:
        w=torch.randn(o,i)*0.02
        l4=Int4Linear(i,o); l4.load_state_dict(l4.quantize(w))
        l8=Int8Linear(i,o); l8.load_state_dict(l8.quantize(w))
        wb=w.to(torch.bfloat16); wf=w
        row=[]
        for M in (1,4,8,16):
            x=torch.randn(M,i).to(torch.bfloat16)
            xb=x.to(torch.bfloat16)
            a=bench(lambda: l4(x)); b=bench(lambda: l8(x)); c=bench(lambda: torch.nn.functional.linear(x.float(),wf)); d=bench(lambda: torch.nn.functional.linear(xb,wb))
            row.append(f"M{M}: i4 {a:.0f} i8 {b:.0f} f32 {c:.0f} bf16 {d:.0f}")
        print((i,o)," | ".join(row))
