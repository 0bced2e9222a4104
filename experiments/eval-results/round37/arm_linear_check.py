import torch, torch.nn.functional as F
g = torch.Generator().manual_seed(0)
W = torch.randn(304, 32, generator=g); x = torch.randn(1, 1, 32, generator=g)
ref = (x.double()[0, 0][None, :] * W.double()).sum(-1)
def err(y): return f"{(y.double().flatten() - ref).abs().max().item():.2e}"
print("F.linear 3d", err(F.linear(x, W)))
print("F.linear 2d", err(F.linear(x[0], W)))
print("matmul W.T", err(x[0] @ W.t()))
print("mv", err(torch.mv(W, x[0, 0])))
print("mm contiguous Wt", err(x[0] @ W.t().contiguous()))
E = torch.randn(304, 576, generator=g); y = torch.randn(1, 576, generator=g)
ref2 = (y.double() * E.double()).sum(-1)
print("F.linear 576", f"{(F.linear(y, E).double().flatten() - ref2).abs().max().item():.2e}")
for n in (1, 2, 4, 8, 16, 64):
    xx = torch.randn(n, 32, generator=g)
    r = (xx.double()[:, None, :] * W.double()[None]).sum(-1)
    print("rows", n, f"{(F.linear(xx, W).double() - r).abs().max().item():.2e}")
for V in (16, 32, 64, 128, 256, 304, 320, 1024):
    WW = torch.randn(V, 32, generator=g)
    r = (x.double()[0, 0][None] * WW.double()).sum(-1)
    print("V", V, f"{(F.linear(x[0], WW).double().flatten() - r).abs().max().item():.2e}")
