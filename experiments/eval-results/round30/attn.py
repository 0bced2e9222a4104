import time, torch, torch.nn.functional as F
torch.set_num_threads(2)
def bench(B, S, widen, n=200):
    q = torch.randn(B, 9, 1, 64, dtype=torch.bfloat16); k = torch.randn(B, 3, S, 64, dtype=torch.bfloat16); v = torch.randn_like(k)
    def step():
        if widen:
            return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), enable_gqa=True).to(torch.bfloat16)
        return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    for _ in range(10): step()
    t = time.perf_counter()
    for _ in range(n): step()
    return (time.perf_counter() - t) / n * 1e6
for B in (1, 4):
    for S in (300, 700):
        a = [bench(B, S, True) for _ in range(3)]; b = [bench(B, S, False) for _ in range(3)]
        print(f"B={B} S={S}: widen {sorted(a)[1]:.0f} us, bf16 {sorted(b)[1]:.0f} us per layer")
