"""As w8a8_rows.py, with torch._int_mm (int8 x int8 -> int32, rows quantized by the caller)."""
import torch, time, statistics, sys
torch.set_num_threads(int(sys.argv[1]))
from metagen.linears import Int4Linear
shapes=[(576,576),(576,192),(576,192),(576,576),(576,1536),(576,1536),(1536,576)]
W=[];L4=[]
for layer in range(30):
    for (i,o) in shapes:
        w=torch.randn(o,i)*0.02
        l4=Int4Linear(i,o); l4.load_state_dict(l4.quantize(w)); L4.append(l4)
        s=(w.abs().amax(1)/127)
        q=torch.round(w/s[:,None]).to(torch.int8)
        W.append((i,q.t().contiguous(),q.t(), s))
def run4(M):
    xs={i:torch.randn(M,i).to(torch.bfloat16) for i in (576,1536)}
    for l in L4: l(xs[l.in_features])
def runi(M, which):
    xs={i:torch.randint(-127,127,(M,i),dtype=torch.int8) for i in (576,1536)}
    for i,qc,qt,s in W: torch._int_mm(xs[i], qc if which==0 else qt)
def bench(f, n=7):
    f(); ts=[]
    for _ in range(n):
        t=time.perf_counter(); f(); ts.append(time.perf_counter()-t)
    return statistics.median(ts)*1e3
for M in (1,4,8,16):
    a=bench(lambda: run4(M)); b=bench(lambda: runi(M,0)); c=bench(lambda: runi(M,1))
    print(f"M={M}: int4 {a:.2f} ms  _int_mm (K,N) contig {b:.2f}  transposed view {c:.2f}")
