import os, sys, torch
from metagen.generator import load_model
for fmt in sys.argv[2:]:
    g = load_model(sys.argv[1], dtype=fmt)
    ids = g.tokenizer.encode(open("/work/main/README.md").read()[:3000])[:300]
    m = g.model
    res = {}
    for rows in (1, 4, 8):
        for th in (1, 2):
            torch.set_num_threads(2)
            cache = m.new_cache(rows, 400)
            with torch.no_grad():
                m.forward(torch.tensor([ids]*rows), cache)
                torch.set_num_threads(th)
                outs = []
                tok = torch.tensor([[ids[5]]]*rows)
                for i in range(5):
                    lg = m.forward(tok, cache); outs.append(lg.float().clone())
                    tok = lg[:, -1].argmax(-1, keepdim=True)
            res[(rows, th)] = torch.stack(outs)
        print(fmt, "rows", rows, "decode max diff 1T vs 2T:", (res[(rows,1)] - res[(rows,2)]).abs().max().item())
