import torch, torch.nn.functional as F
g = torch.Generator().manual_seed(0)
for (i, o) in ((576, 576), (576, 192), (576, 1536), (1536, 576), (576, 49152), (32, 304), (32, 288), (32, 336), (32, 400), (64, 304)):
    W = torch.randn(o, i, generator=g) / i ** 0.5
    for n in (1, 4):
        x = torch.randn(n, i, generator=g)
        r = (x.double() @ W.double().t())
        print((i, o), n, f"{(F.linear(x, W).double() - r).abs().max().item():.2e}", flush=True)
