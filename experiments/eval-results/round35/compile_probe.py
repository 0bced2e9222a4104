"""Issue 16's compiled decode step, probed: a static KV cache written at a position tensor, the
whole one-position step (embedding -> 30 blocks -> head) under torch.compile, int4 model.
Compares eager (today's Transformer.forward, plain KVCache) and the compiled static step:
ms a step at ROWS rows after a 300-token prompt, compile time, logits difference, greedy tokens.
usage: compile_probe.py ROWS [THREADS]"""
import glob, statistics, sys, time
import metagen  # noqa: F401  (OMP_WAIT_POLICY as metagen runs)
import torch
import torch.nn.functional as F
from metagen.generator import load_model
from metagen.model import apply_rope

rows = int(sys.argv[1]); threads = int(sys.argv[2]) if len(sys.argv) > 2 else 1
torch.set_num_threads(threads)
g = load_model(glob.glob('/tmp/mghome35/models/*.gguf')[0], dtype="int4")
m = g.model
a = m.args
MAX = 512
act = m.activation_dtype  # bfloat16 matmul inputs in int4

def static_step(tokens, pos, kc, vc, cos_t, sin_t):
    """tokens (B, 1); pos (1,) int64; kc, vc (L, B, n_kv, MAX, hd) bfloat16."""
    B = tokens.shape[0]
    x = F.embedding(tokens, m.tok_embeddings).float()
    cos, sin = cos_t[pos][None, :, None].to(act), sin_t[pos][None, :, None].to(act)
    mask = (torch.arange(MAX) <= pos)[None, None, None, :]  # (1, 1, 1, MAX)
    nh, nkv, hd = a.n_heads, a.n_kv_heads, a.head_dim
    for i, block in enumerate(m.layers):
        att = block.attention
        h = block.attention_norm(x, act)
        qkv = att.wqkv(h).view(B, 1, nh + 2 * nkv, hd)
        qk = apply_rope(qkv[:, :, : nh + nkv], cos, sin)
        q = qk[:, :, :nh].transpose(1, 2)
        k = qk[:, :, nh:].transpose(1, 2)
        v = qkv[:, :, nh + nkv:].transpose(1, 2)
        kc[i].index_copy_(2, pos, k)
        vc[i].index_copy_(2, pos, v)
        out = F.scaled_dot_product_attention(q.float(), kc[i].float(), vc[i].float(), attn_mask=mask, enable_gqa=True)
        x = x + att.wo(out.to(act).reshape(B, 1, nh * hd))
        x = x + block.feed_forward(block.ffn_norm(x, act))
    return m.output(m.norm(x, act)).float()

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
    return outs, times, cache

def static_run(fn, steps):
    cache = m.new_cache(rows, MAX)
    logits = m(prompt, cache, last_only=True)  # the prompt eagerly, into the same layout
    kc, vc = cache.k, cache.v
    outs, times, tok = [], [], logits[:, -1].argmax(-1, keepdim=True)
    for step in range(steps):
        pos = torch.tensor([len(ids) + step])
        s = time.perf_counter(); logits = fn(tok, pos, kc, vc, cos_t, sin_t); times.append(time.perf_counter() - s)
        outs.append(logits[:, -1]); tok = logits[:, -1].argmax(-1, keepdim=True)
    return outs, times

with torch.inference_mode():
    e_outs, e_times, _ = eager_run(40)
    s_outs, s_times = static_run(static_step, 40)
    print(f"static eager vs eager: max logit diff {max((x - y).abs().max().item() for x, y in zip(e_outs, s_outs)):.3g}")
    compiled = torch.compile(static_step, dynamic=False)
    t = time.perf_counter(); c_outs, c_times = static_run(compiled, 2); print(f"compile + 2 steps: {time.perf_counter() - t:.1f} s", flush=True)
    res = {"eager": [], "static": [], "compiled": []}
    for rep in range(3):
        res["eager"] += eager_run(40)[1][5:]
        res["static"] += static_run(static_step, 40)[1][5:]
        c_outs, c_t = static_run(compiled, 40); res["compiled"] += c_t[5:]
    for name, ts in res.items():
        print(f"rows={rows} threads={threads} {name}: {statistics.median(ts) * 1e3:.2f} ms a step")
    e_tok = [o.argmax(-1).tolist() for o in e_outs]; c_tok = [o.argmax(-1).tolist() for o in c_outs]
    print(f"compiled vs eager: max logit diff {max((x - y).abs().max().item() for x, y in zip(e_outs, c_outs)):.3g}; "
          f"greedy tokens equal for {next((i for i, (p, q) in enumerate(zip(e_tok, c_tok)) if p != q), len(e_tok))} of {len(e_tok)} steps")

if len(sys.argv) > 3:  # where the compiled step's time goes
    from torch.profiler import profile, ProfilerActivity
    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
        static_run(compiled, 20)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
