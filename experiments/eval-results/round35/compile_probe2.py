"""The compiled step, second probe: what compile_probe.py found in the way removed. The int4 and
int8 kernels called directly (no graph break at each linear), attention over the filled slots
only (the cache sliced to a length rounded up to BUCKET, masked past the real one).
usage: compile_probe2.py ROWS"""
import glob, statistics, sys, time
import metagen  # noqa: F401
import torch
import torch.nn.functional as F
from metagen.generator import load_model
from metagen.model import apply_rope

rows = int(sys.argv[1])
torch.set_num_threads(1)
g = load_model(glob.glob('/tmp/mghome35/models/*.gguf')[0], dtype="int4")
m = g.model
a = m.args
MAX, BUCKET = 512, 64
act = m.activation_dtype
int4 = torch.ops.aten._weight_int4pack_mm_for_cpu
int8 = torch.ops.aten._weight_int8pack_mm

def lin4(mod, x):
    return int4(x.reshape(-1, x.shape[-1]), mod.weight, 32, mod.scale).reshape(*x.shape[:-1], mod.out_features)

def norm(mod, x):
    return F.rms_norm(x, (x.shape[-1],), mod.weight, mod.eps).to(act)

def static_step(tokens, pos, kc, vc, cos_t, sin_t, length: int):
    B = tokens.shape[0]
    x = F.embedding(tokens, m.tok_embeddings).float()
    cos, sin = cos_t[pos][None, :, None].to(act), sin_t[pos][None, :, None].to(act)
    mask = (torch.arange(length) <= pos)[None, None, None, :]
    nh, nkv, hd = a.n_heads, a.n_kv_heads, a.head_dim
    for i, block in enumerate(m.layers):
        att, ff = block.attention, block.feed_forward
        qkv = lin4(att.wqkv, norm(block.attention_norm, x)).view(B, 1, nh + 2 * nkv, hd)
        qk = apply_rope(qkv[:, :, : nh + nkv], cos, sin)
        q = qk[:, :, :nh].transpose(1, 2)
        kc[i].index_copy_(2, pos, qk[:, :, nh:].transpose(1, 2))
        vc[i].index_copy_(2, pos, qkv[:, :, nh + nkv:].transpose(1, 2))
        out = F.scaled_dot_product_attention(q.float(), kc[i, :, :, :length].float(), vc[i, :, :, :length].float(),
                                             attn_mask=mask, enable_gqa=True)
        x = x + lin4(att.wo, out.to(act).reshape(B, 1, nh * hd))
        gate, up = lin4(ff.w13, norm(block.ffn_norm, x)).split(ff.hidden, dim=-1)
        x = x + lin4(ff.w2, F.silu(gate) * up)
    h = norm(m.norm, x).reshape(B, -1)
    return int8(h, m.output.weight, m.output.scale).float()[:, None]

ids = g.tokenizer.encode("The lighthouse keeper walked down to the shore every morning. " * 25)[:300]
prompt = torch.tensor([ids] * rows)
cos_t, sin_t = m._rope(MAX)

def eager_run(steps):
    cache = m.new_cache(rows, MAX)
    logits = m(prompt, cache, last_only=True)
    outs, times, tok = [], [], logits[:, -1].argmax(-1, keepdim=True)
    for _ in range(steps):
        s = time.perf_counter(); logits = m(tok, cache); times.append(time.perf_counter() - s)
        outs.append(logits[:, -1]); tok = logits[:, -1].argmax(-1, keepdim=True)
    return outs, times

def static_run(fn, steps):
    cache = m.new_cache(rows, MAX)
    logits = m(prompt, cache, last_only=True)
    kc, vc = cache.k, cache.v
    outs, times, tok = [], [], logits[:, -1].argmax(-1, keepdim=True)
    for step in range(steps):
        p = len(ids) + step
        pos = torch.tensor([p])
        length = min(MAX, -(-(p + 1) // BUCKET) * BUCKET)
        s = time.perf_counter(); logits = fn(tok, pos, kc, vc, cos_t, sin_t, length); times.append(time.perf_counter() - s)
        outs.append(logits[:, -1]); tok = logits[:, -1].argmax(-1, keepdim=True)
    return outs, times

with torch.inference_mode():
    e_outs, _ = eager_run(40)
    s_outs, _ = static_run(static_step, 40)
    print(f"static eager vs eager: max logit diff {max((x - y).abs().max().item() for x, y in zip(e_outs, s_outs)):.3g}", flush=True)
    compiled = torch.compile(static_step, dynamic=False)
    t = time.perf_counter(); static_run(compiled, 2); print(f"compile: {time.perf_counter() - t:.1f} s", flush=True)
    t = time.perf_counter(); static_run(compiled, 40); print(f"40 steps (new buckets compile): {time.perf_counter() - t:.1f} s", flush=True)
    res = {"eager": [], "static": [], "compiled": []}
    for rep in range(3):
        res["eager"] += eager_run(40)[1][5:]
        res["static"] += static_run(static_step, 40)[1][5:]
        c_outs, c_t = static_run(compiled, 40); res["compiled"] += c_t[5:]
    for name, ts in res.items():
        print(f"rows={rows} {name}: {statistics.median(ts) * 1e3:.2f} ms a step", flush=True)
    e_tok = [o.argmax(-1).tolist() for o in e_outs]; c_tok = [o.argmax(-1).tolist() for o in c_outs]
    print(f"compiled vs eager: max logit diff {max((x - y).abs().max().item() for x, y in zip(e_outs, c_outs)):.3g}; "
          f"greedy equal for {next((i for i, (p, q) in enumerate(zip(e_tok, c_tok)) if p != q), len(e_tok))} of {len(e_tok)} steps")
    if len(sys.argv) > 2:
        from torch.profiler import profile, ProfilerActivity
        static_run(compiled, 20)
        cache = m.new_cache(rows, MAX); m(prompt, cache, last_only=True)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            tok = torch.zeros(rows, 1, dtype=torch.long)
            for step in range(20):
                p = len(ids) + step
                compiled(tok, torch.tensor([p]), cache.k, cache.v, cos_t, sin_t, min(MAX, -(-(p + 1) // BUCKET) * BUCKET))
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
