import statistics, time, torch
torch.set_num_threads(1)
def tm(fn, n=300):
    for _ in range(10): fn()
    ts = []
    for _ in range(n):
        s = time.perf_counter(); fn(); ts.append(time.perf_counter() - s)
    return statistics.median(ts) * 1e6
B, P, t, n_kv, group, hd = 4, 300, 100, 3, 3, 64
q = torch.randn(B, 9, 1, hd, dtype=torch.bfloat16)
pk, pv = torch.randn(n_kv, P, hd), torch.randn(n_kv, P, hd)
k, v = torch.randn(B, n_kv, t, hd, dtype=torch.bfloat16), torch.randn(B, n_kv, t, hd, dtype=torch.bfloat16)
qf = q.float().view(B, n_kv, group, hd)
stacked = qf.transpose(0, 1).reshape(n_kv, B * group, hd)
kf, vf = k.float(), v.float()
on_prefix = torch.bmm(stacked, pk.transpose(1, 2))
on_own = qf @ kf.transpose(-1, -2)
scores = torch.cat([on_prefix.view(n_kv, B, group, P).transpose(0, 1), on_own], dim=-1)
w = torch.softmax(scores, dim=-1)
print("q.float etc", tm(lambda: q.float().view(B, n_kv, group, hd) * hd ** -0.5))
print("stacked", tm(lambda: qf.transpose(0, 1).reshape(n_kv, B * group, hd)))
print("bmm prefix", tm(lambda: torch.bmm(stacked, pk.transpose(1, 2))))
print("keys.float", tm(lambda: k.float()))
print("own scores", tm(lambda: qf @ kf.transpose(-1, -2)))
print("cat", tm(lambda: torch.cat([on_prefix.view(n_kv, B, group, P).transpose(0, 1), on_own], dim=-1)))
print("softmax", tm(lambda: torch.softmax(scores, dim=-1)))
print("bmm prefix v", tm(lambda: torch.bmm(w[..., :P].transpose(0, 1).reshape(n_kv, B * group, P), pv)))
print("own v", tm(lambda: w[..., P:] @ vf))
print("own v contiguous", tm(lambda: w[..., P:].contiguous() @ vf))
print("sdpa 1 row over P+t", tm(lambda: torch.nn.functional.scaled_dot_product_attention(torch.randn(1,9,1,hd), torch.randn(1,3,P+t,hd), torch.randn(1,3,P+t,hd), enable_gqa=True)))
kk = torch.randn(1,3,P+t,hd); q1 = torch.randn(1,9,1,hd)
print("sdpa 1 row over P+t (no randn)", tm(lambda: torch.nn.functional.scaled_dot_product_attention(q1, kk, kk, enable_gqa=True)))
kb = torch.randn(B,3,P+t,hd); qb = torch.randn(B,9,1,hd)
print("sdpa B rows over P+t", tm(lambda: torch.nn.functional.scaled_dot_product_attention(qb, kb, kb, enable_gqa=True)))
