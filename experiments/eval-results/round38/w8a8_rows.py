"""The linears of 30 SmolLM2-135M blocks (random weights, 7 per block), one call each a step, at 1-16
rows: metagen's int4 kernel against fbgemm's dynamic int8 (W8A8). Usage: python w8a8_rows.py THREADS"""
import torch, time, statistics, warnings
warnings.filterwarnings("ignore")
from metagen.linears import Int4Linear
torch.manual_seed(0)
import sys
torch.set_num_threads(int(sys.argv[1]))
shapes=[(576,576),(576,192),(576,192),(576,576),(576,1536),(576,1536),(1536,576)]
L4=[];LQ=[]
for layer in range(30):
    for (i,o) in shapes:
        w=torch.randn(o,i)*0.02
        l4=Int4Linear(i,o); l4.load_state_dict(l4.quantize(w)); L4.append(l4)
        qw=torch.quantize_per_channel(w, (w.abs().amax(1)/127).clamp(min=1e-8), torch.zeros(o,dtype=torch.long), 0, torch.qint8)
        LQ.append((i,torch.ops.quantized.linear_prepack(qw, None)))
def run4(M):
    xs={i:torch.randn(M,i).to(torch.bfloat16) for i in (576,1536)}
    for l in L4: l(xs[l.in_features])
def runq(M):
    xs={i:torch.randn(M,i) for i in (576,1536)}
    for i,p in LQ: torch.ops.quantized.linear_dynamic(xs[i], p, True)
def bench(f, n=10):
    f(); ts=[]
    for _ in range(n):
        t=time.perf_counter(); f(); ts.append(time.perf_counter()-t)
    return statistics.median(ts)*1e3
for M in (1,2,4,8,16):
    a=bench(lambda: run4(M)); b=bench(lambda: runq(M))
    print(f"M={M}: int4 {a:.2f} ms  fbgemm-int8 {b:.2f} ms  ratio {a/b:.2f}")
