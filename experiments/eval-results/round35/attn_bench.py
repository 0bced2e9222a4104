"""attend_after_prefix against a version that runs the prompt part and the own part each in
torch's fused CPU attention and merges them by their log-sum-exp."""
import statistics, sys, time
import torch
from metagen.model import attend_after_prefix
torch.set_num_threads(1)
fa = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu

def merged(q, prefix_k, prefix_v, keys, values):
    B, n_heads, _, hd = q.shape
    n_kv, P, _ = prefix_k.shape
    group = n_heads // n_kv
    qf = q.float().view(B, n_kv, group, hd)
    stacked = qf.transpose(0, 1).reshape(1, n_kv, B * group, hd)
    o1, l1 = fa(stacked, prefix_k[None], prefix_v[None])  # (1, n_kv, B*group, hd), (1, n_kv, B*group)
    o2, l2 = fa(qf, keys.float(), values.float())  # (B, n_kv, group, hd), (B, n_kv, group)
    o1 = o1.view(n_kv, B, group, hd).transpose(0, 1)
    l1 = l1.view(n_kv, B, group).transpose(0, 1)
    w1 = torch.sigmoid(l1 - l2)[..., None]  # exp(l1)/(exp(l1)+exp(l2))
    out = o2 + w1 * (o1 - o2)
    return out.reshape(B, n_heads, 1, hd)

torch.manual_seed(0)
for B, P, t in [(2, 300, 50), (4, 300, 100), (4, 800, 200), (8, 800, 200)]:
    q = torch.randn(B, 9, 1, 64, dtype=torch.bfloat16)
    pk, pv = torch.randn(3, P, 64), torch.randn(3, P, 64)
    k, v = torch.randn(B, 3, t, 64, dtype=torch.bfloat16), torch.randn(B, 3, t, 64, dtype=torch.bfloat16)
    a, b = attend_after_prefix(q, pk, pv, k, v), merged(q, pk, pv, k, v)
    err = (a - b).abs().max().item()
    times = {"old": [], "new": []}
    for _ in range(200):
        for name, fn in (("old", attend_after_prefix), ("new", merged)):
            s = time.perf_counter(); fn(q, pk, pv, k, v); times[name].append(time.perf_counter() - s)
    o, n = statistics.median(times["old"]) * 1e6, statistics.median(times["new"]) * 1e6
    print(f"B={B} P={P} t={t}: old {o:.0f} us, merged {n:.0f} us ({o/n:.2f}x), max diff {err:.2e}")
