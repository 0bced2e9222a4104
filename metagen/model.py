"""A llama-family decoder-only transformer with a preallocated KV cache.

Token embeddings; N blocks of RMSNorm -> causal grouped-query self-attention with rotary
position embeddings (rotate-half form, as in the original checkpoints) -> residual ->
RMSNorm -> SwiGLU feed-forward -> residual; final RMSNorm; output head (tied to the
embeddings when the file has none).  References: Llama (Touvron et al. 2023), RoFormer
(Su et al. 2021), GLU variants (Shazeer 2020), RMSNorm (Zhang & Sennrich 2019); layout
after gpt-fast's model.py and llama2.c.

Batches of prompts of different lengths are left-padded.  Each row's first real token
sits at position 0, so a padded row computes what it would compute alone.  Q/K/V and
gate/up projections are fused into one matmul each; weights may be stored in any of
metagen.linears' formats (float32, bfloat16, int8, int4); modules are built in `__init__` and
filled by `load_state_dict`.
"""

from __future__ import annotations

import math
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from metagen.cache import JointPrefixCache, KVCache, NoCache, SharedPrefixCache
from metagen.gguf import ModelArgs
from metagen.linears import FLOAT_DTYPES, WidenedForPrompts, make_linear, widened_weights
from metagen.threads import TIMED_FORMATS, StepThreads

# From this many new positions per row in one piece of a prompt, compact formats compute on
# weights widened to the prompt dtype on a CPU (int4 on 2 AVX2 cores: a 3072x576 matmul of 128
# rows takes 9.9 ms in the kernel and 5.8 ms widened to float32; the crossing is near 64 rows. A
# 900-token prompt: 4.8 s -> 2.5 s; bfloat16 12.8 s -> 2.2 s). Decoding (one position per row)
# always runs the compact kernels, however many rows the batch has: the choice never depends on
# the batch size.
WIDENED_POSITIONS = 64
# A prompt is processed at most this many token rows (batch x positions) at a time, so
# that activations and attention scores stay small: 16 prompts of 1,000 tokens in one pass
# would hold 16,000 rows (the gate/up output alone 196 MB, the scores 576 MB). One prompt of
# 1,286 tokens: peak RSS 483 MiB in one pass, 452 MiB in pieces, at the same speed.
PREFILL_ROWS = 512


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim), requires_grad=False)

    def forward(self, x: torch.Tensor, out_dtype: torch.dtype) -> torch.Tensor:
        # Normalize in float32 whatever the matmul dtype, as the reference does;
        # F.rms_norm does it in one kernel instead of six.
        return F.rms_norm(x.float(), (x.shape[-1],), self.weight, self.eps).to(out_dtype)


def rope_tables(args: ModelArgs, max_len: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of shape (max_len, head_dim), float32, rotate-half layout."""
    half = args.head_dim // 2
    inv_freq = 1.0 / (args.rope_theta ** (torch.arange(0, half, dtype=torch.int64, device=device).float() * 2 / args.head_dim))
    positions = torch.arange(max_len, dtype=torch.float32, device=device)
    freqs = torch.outer(positions, inv_freq)  # (max_len, head_dim/2)
    emb = torch.cat((freqs, freqs), dim=-1)  # (max_len, head_dim)
    return emb.cos(), emb.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: (B, T, heads, head_dim); cos, sin: (B or 1, T, 1, head_dim)."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def attend_after_prefix(q: torch.Tensor, prefix_k: torch.Tensor, prefix_v: torch.Tensor,
                        keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Attention of one new position per row over a prompt all rows share, then each row's own
    slots; float32. q: (B, n_heads, 1, head_dim); prefix_k, prefix_v: (n_kv, P, head_dim), held
    once; keys, values: (B, n_kv, t, head_dim). Returns (B, n_heads, 1, head_dim)."""
    B, n_heads, T, head_dim = q.shape
    n_kv, P, _ = prefix_k.shape
    group = n_heads // n_kv  # query heads per key/value head
    if T != 1:
        raise ValueError("a shared prompt's cache decodes one position per row")
    if B == 1:
        # The last candidate still running: torch's matmuls of a few rows round otherwise than a
        # batch's (prompt scores off by ~1e-5), so alone it would write other text than beside
        # other rows (a scene decoded with others). As two rows it gets a batch's bits.
        twice = [torch.cat([t, t]) for t in (q, keys, values)]
        return attend_after_prefix(twice[0], prefix_k, prefix_v, twice[1], twice[2])[:1]
    q = q.float().view(B, n_kv, group, head_dim) * head_dim ** -0.5
    # every row's queries of one key/value head against the prompt's keys, in one matmul
    stacked = q.transpose(0, 1).reshape(n_kv, B * group, head_dim)  # (n_kv, B*group, head_dim)
    on_prefix = torch.bmm(stacked, prefix_k.transpose(1, 2))  # (n_kv, B*group, P)
    on_own = q @ keys.float().transpose(-1, -2)  # (B, n_kv, group, t)
    scores = torch.cat([on_prefix.view(n_kv, B, group, P).transpose(0, 1), on_own], dim=-1)  # (B, n_kv, group, P+t)
    weights = torch.softmax(scores, dim=-1)
    from_prefix = torch.bmm(weights[..., :P].transpose(0, 1).reshape(n_kv, B * group, P), prefix_v)  # (n_kv, B*group, hd)
    out = from_prefix.view(n_kv, B, group, head_dim).transpose(0, 1) + weights[..., P:] @ values.float()
    return out.reshape(B, n_heads, 1, head_dim)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs, weight_format: str):
        super().__init__()
        self.n_heads = args.n_heads
        self.n_kv_heads = args.n_kv_heads
        self.head_dim = args.head_dim
        self.q_size = args.n_heads * args.head_dim
        kv_size = args.n_kv_heads * args.head_dim
        self.wqkv = make_linear(weight_format, args.dim, self.q_size + 2 * kv_size)  # fused Q, K, V
        self.wo = make_linear(weight_format, self.q_size, args.dim)

    def forward(self, x, cos, sin, cache: KVCache, layer: int, mask: torch.Tensor | None):
        B, T, _ = x.shape
        qkv = self.wqkv(x).view(B, T, self.n_heads + 2 * self.n_kv_heads, self.head_dim)
        # Rotate queries and keys together: one pass over (B, T, n_heads + n_kv, head_dim).
        qk = apply_rope(qkv[:, :, : self.n_heads + self.n_kv_heads], cos, sin)
        q = qk[:, :, : self.n_heads].transpose(1, 2)  # (B, n_heads, T, head_dim)
        k = qk[:, :, self.n_heads :].transpose(1, 2)  # (B, n_kv, T, head_dim)
        v = qkv[:, :, self.n_heads + self.n_kv_heads :].transpose(1, 2)  # (B, n_kv, T, head_dim)
        if isinstance(cache, JointPrefixCache):  # groups of candidates, each after its own prompt
            out = torch.cat([attend_after_prefix(q[rows], group.prefix_k[layer], group.prefix_v[layer],
                                                 *group.update(layer, k[rows], v[rows]))
                             for group, rows in zip(cache.groups, cache.rows)])
            return self.wo(out.to(x.dtype).reshape(B, T, self.q_size))
        keys, values = cache.update(layer, k, v)  # each (B, n_kv, S, head_dim)
        if isinstance(cache, SharedPrefixCache):  # candidates decoding after one prompt, no padding
            out = attend_after_prefix(q, cache.prefix_k[layer], cache.prefix_v[layer], keys, values)
            return self.wo(out.to(x.dtype).reshape(B, T, self.q_size))
        if keys.dtype != q.dtype:  # float32 prompt processing over a compact cache
            keys, values = keys.to(q.dtype), values.to(q.dtype)
        if T == 1:
            # One query per row. CPU attention in bfloat16 is about 4x slower than widening
            # the cached keys and values to float32 first (no bfloat16 units on most CPUs).
            dtype = q.dtype
            if q.device.type == "cpu" and dtype != torch.float32:
                q, keys, values = q.float(), keys.float(), values.float()
            row_mask = None if mask is None else mask.view(B, 1, 1, -1)
            out = F.scaled_dot_product_attention(q, keys, values, attn_mask=row_mask, enable_gqa=True)
            out = out.to(dtype).reshape(B, T, self.q_size)  # (B, 1, dim)
        else:
            if mask is None:
                out = F.scaled_dot_product_attention(q, keys, values, is_causal=True, enable_gqa=True)
            else:
                out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, enable_gqa=True)
            out = out.transpose(1, 2).reshape(B, T, self.q_size)  # (B, T, dim)
        return self.wo(out)


class FeedForward(nn.Module):
    def __init__(self, args: ModelArgs, weight_format: str):
        super().__init__()
        self.hidden = args.ffn_dim
        self.w13 = make_linear(weight_format, args.dim, 2 * args.ffn_dim)  # fused gate and up
        self.w2 = make_linear(weight_format, args.ffn_dim, args.dim)

    def forward(self, x):
        gate, up = self.w13(x).split(self.hidden, dim=-1)
        return self.w2(F.silu(gate) * up)


class TransformerBlock(nn.Module):
    def __init__(self, args: ModelArgs, weight_format: str):
        super().__init__()
        self.attention = Attention(args, weight_format)
        self.feed_forward = FeedForward(args, weight_format)
        self.attention_norm = RMSNorm(args.dim, args.norm_eps)
        self.ffn_norm = RMSNorm(args.dim, args.norm_eps)

    def forward(self, x, cos, sin, cache, layer, mask):
        # x is the float32 residual stream; only the matmul inputs take the compact dtype.
        act = cos.dtype
        h = x + self.attention(self.attention_norm(x, act), cos, sin, cache, layer, mask)
        return h + self.feed_forward(self.ffn_norm(h, act))


class Transformer(nn.Module):
    """The model, its modules built for `weight_format`; fill it with `from_weights` (float
    tensors under our names, quantized here) or `from_state` (what `export_state` gave)."""

    def __init__(self, args: ModelArgs, weight_format: str = "float32"):
        super().__init__()
        self.args = args
        self.weight_format = weight_format
        self.prompt_dtype = torch.float32  # a CPU prompt's matmul dtype: set_prompt_dtype
        # The residual stream stays float32 in every format (errors would otherwise pile up
        # over the layers), so the lookup table does too.
        self.register_buffer("tok_embeddings", torch.empty(args.vocab_size, args.dim))  # (V, dim)
        self.layers = nn.ModuleList(TransformerBlock(args, weight_format) for _ in range(args.n_layers))
        self.norm = RMSNorm(args.dim, args.norm_eps)
        # GGUF files keep the output head at 8 bits or more (Q8_0 or Q6_K): 4 bits there
        # costs more quality than anywhere else, so int4 models keep an int8 head.
        self.output = make_linear("int8" if weight_format == "int4" else weight_format, args.dim, args.vocab_size)
        self._rope_len = 0
        self._cos = self._sin = None
        # a decoding step's CPU thread count, timed where it cannot change the logits (threads.py)
        self.step_threads = StepThreads(tuned=weight_format in TIMED_FORMATS)

    # -- building -------------------------------------------------------------------
    @property
    def shares_embeddings(self) -> bool:
        """Whether one (V, dim) matrix serves both the lookup and the output head."""
        return self.args.tied_embeddings and self.weight_format == "float32"

    @classmethod
    def from_weights(cls, args: ModelArgs, tensors: dict[str, torch.Tensor],
                     weight_format: str = "float32", deltas: dict[str, torch.Tensor] | None = None) -> "Transformer":
        """Build from our per-projection names (gguf.WEIGHT_MAP), fusing Q/K/V and gate/up.

        deltas: float32 changes to add to fused weights before they take the format, by module
        name ("layers.3.attention.wqkv"): a merged LoRA adapter (metagen.lora)."""
        with torch.device("meta"):
            model = cls(args, weight_format)
        t = {name: torch.as_tensor(value) for name, value in tensors.items()}
        embeddings = t["tok_embeddings.weight"].float().contiguous()
        state = {"tok_embeddings": embeddings, "norm.weight": t["norm.weight"].float()}
        weights = {} if model.shares_embeddings else {
            "output": embeddings if args.tied_embeddings else t["output.weight"].float()}
        for i in range(args.n_layers):
            p = f"layers.{i}."
            weights[p + "attention.wqkv"] = torch.cat([t[p + "attention.wq.weight"], t[p + "attention.wk.weight"],
                                                       t[p + "attention.wv.weight"]]).float()
            weights[p + "attention.wo"] = t[p + "attention.wo.weight"].float()
            weights[p + "feed_forward.w13"] = torch.cat([t[p + "feed_forward.w1.weight"],
                                                         t[p + "feed_forward.w3.weight"]]).float()
            weights[p + "feed_forward.w2"] = t[p + "feed_forward.w2.weight"].float()
            for norm in ("attention_norm.weight", "ffn_norm.weight"):
                state[p + norm] = t[p + norm].float()
        for name, delta in (deltas or {}).items():
            weights[name] = weights[name] + delta
        for name, weight in weights.items():
            linear = model.get_submodule(name)
            state.update({f"{name}.{key}": value for key, value in linear.quantize(weight).items()})
        model.load_state(state)
        return model

    @classmethod
    def from_state(cls, args: ModelArgs, state: dict[str, torch.Tensor], weight_format: str) -> "Transformer":
        """Inverse of export_state."""
        with torch.device("meta"):
            model = cls(args, weight_format)
        model.load_state(dict(state))
        return model

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        """Take the tensors of `state` as they are (no copy: a memory-mapped file stays mapped)."""
        if self.shares_embeddings:
            state.setdefault("output.weight", state["tok_embeddings"])
        self.load_state_dict(state, assign=True)
        self.eval()

    def export_state(self) -> dict[str, torch.Tensor]:
        """Every tensor needed to rebuild this model as it is (fused, in its weight format)."""
        state = self.state_dict()
        if state["output.weight"].data_ptr() == self.tok_embeddings.data_ptr():
            del state["output.weight"]  # tied and shared: stored once, as the embeddings
        return {name: tensor.contiguous() for name, tensor in state.items()}

    @property
    def activation_dtype(self) -> torch.dtype:
        return FLOAT_DTYPES.get(self.weight_format, torch.bfloat16)

    @property
    def device(self) -> torch.device:
        return self.tok_embeddings.device

    def to_device(self, device: str | torch.device) -> "Transformer":
        self.to(device)
        self._rope_len = 0
        return self

    def set_prompt_dtype(self, dtype: torch.dtype) -> None:
        """Run a CPU prompt's matmuls and attention in `dtype` (float32, or bfloat16 where the CPU
        has bfloat16 units); the residual stream and norms stay float32. Drops kept weights."""
        if dtype not in (torch.float32, torch.bfloat16):
            raise ValueError(f"prompts run in float32 or bfloat16, not {dtype}")
        self.prompt_dtype = dtype
        for module in self.modules():
            if isinstance(module, WidenedForPrompts):
                module.kept_weight = None

    def keep_prompt_weights(self) -> int:
        """Keep every compact or bfloat16 weight widened to the prompt dtype as well, so that
        prompts skip the widening (metagen serve); returns the bytes this keeps."""
        kept = 0
        for module in self.modules():
            if isinstance(module, WidenedForPrompts) and module.weight.dtype != self.prompt_dtype:
                module.kept_weight = module.widened(self.prompt_dtype)
                kept += module.kept_weight.numel() * module.kept_weight.element_size()
        return kept

    def new_cache(self, batch_size: int, max_len: int) -> KVCache:
        return KVCache(self.args, batch_size, max_len, self.activation_dtype, self.device)

    def _rope(self, needed: int):
        if needed > self._rope_len:
            size = max(needed, 256, 2 * self._rope_len)
            self._cos, self._sin = rope_tables(self.args, size, self.device)
            self._rope_len = size
        return self._cos, self._sin

    # -- running --------------------------------------------------------------------
    @torch.inference_mode()
    def forward(self, tokens: torch.Tensor, cache: KVCache, pad: torch.Tensor | None = None,
                last_only: bool = False) -> torch.Tensor:
        """Run tokens (B, T) after the cache's filled slots; returns float32 logits.

        pad: (B,) count of left-padding slots per row (None: no padding). Rows with padding
        see only their real tokens, at positions counted from their first real token.
        Returns (B, T, V), or (B, 1, V) with last_only.
        """
        B, T = tokens.shape
        start = cache.length
        if start + T > cache.max_len:
            raise ValueError(f"KV cache holds {cache.max_len} slots; {start + T} needed")
        # CPU threads (threads.StepThreads): a one-position step on the count timed fastest, which
        # gives the same logits; a prompt's pass on torch's own count, whose sums depend on it
        threads = nullcontext() if self.device.type != "cpu" else (
            self.step_threads.step(B) if T == 1 else self.step_threads.prompt())
        with threads:
            return self._forward_pieces(tokens, cache, pad, last_only)

    def _forward_pieces(self, tokens: torch.Tensor, cache: KVCache, pad: torch.Tensor | None,
                        last_only: bool) -> torch.Tensor:
        """forward's pass, a long prompt in pieces."""
        B, T = tokens.shape
        chunk = max(1, PREFILL_ROWS // B)
        if T > chunk:
            # A long prompt in pieces: the same result, with activations (and attention
            # scores) for at most PREFILL_ROWS rows alive at once instead of B * T.
            outs = []
            for begin in range(0, T, chunk):
                final = begin + chunk >= T
                head = ("last" if final else "none") if last_only else "all"
                out = self._forward(tokens[:, begin:begin + chunk], cache, pad, head, self.piece_mode(T, begin))
                if out is not None:
                    outs.append(out)
            return torch.cat(outs, dim=1)
        return self._forward(tokens, cache, pad, "last" if last_only else "all", self.piece_mode(T))

    def _forward(self, tokens: torch.Tensor, cache: KVCache, pad: torch.Tensor | None,
                 head: str, mode: tuple[torch.dtype, bool]) -> torch.Tensor | None:
        """One pass in `mode` (piece_mode); head: logits for "all" positions, the "last" one, or
        "none" (None)."""
        act, widened = mode
        with widened_weights(widened):
            x = self._residual(tokens, cache, pad, act)
            if head == "all":
                return self.output(self.norm(x, act)).float()
        if head == "none":
            return None
        act, widened = self.piece_mode(1)  # the last position alone, as a decoding step has it
        with widened_weights(widened):
            return self.output(self.norm(x[:, -1:], act)).float()

    def training_states(self, tokens: torch.Tensor) -> torch.Tensor:
        """The final normed states (B, T, dim) of whole sequences, float32, with autograd and
        no cache: what `metagen tune` puts the output head on, at the positions it learns."""
        with widened_weights(True):
            return self.norm(self._residual(tokens, NoCache(), None, torch.float32), torch.float32)

    def _residual(self, tokens: torch.Tensor, cache: KVCache | NoCache, pad: torch.Tensor | None,
                  act: torch.dtype) -> torch.Tensor:
        """The residual stream (B, T, dim) after every block; the cache marked filled."""
        B, T = tokens.shape
        start = cache.length
        slots = torch.arange(start, start + T, device=tokens.device)  # (T,)
        joint = isinstance(cache, JointPrefixCache)
        cos_table, sin_table = self._rope((cache.longest_prompt if joint else 0) + start + T)
        if joint:  # no mask: attend_after_prefix sees only the row's own group
            positions = cache.prompt_lengths[:, None] + slots[None, :]  # (B, T)
            cos, sin, mask = cos_table[positions][:, :, None], sin_table[positions][:, :, None], None
        elif pad is None:
            cos = cos_table[slots][None, :, None]  # (1, T, 1, head_dim)
            sin = sin_table[slots][None, :, None]
            mask = None
            if T > 1 and start > 0:  # SDPA's is_causal aligns to the top-left corner
                keys = torch.arange(start + T, device=tokens.device)
                mask = (keys[None, :] <= slots[:, None])[None, None]  # (1, 1, T, S)
        else:
            positions = (slots[None, :] - pad[:, None]).clamp(min=0)  # (B, T)
            cos = cos_table[positions][:, :, None]  # (B, T, 1, head_dim)
            sin = sin_table[positions][:, :, None]
            keys = torch.arange(start + T, device=tokens.device)  # (S,)
            causal = keys[None, :] <= slots[:, None]  # (T, S)
            real = keys[None, :] >= pad[:, None]  # (B, S)
            mask = (causal[None] & real[:, None, :])[:, None]  # (B, 1, T, S)
            # A pad query would see no key at all; let it see itself so softmax stays finite.
            mask = mask | (keys[None, None, None, :] == slots[None, None, :, None])
        cos, sin = cos.to(act), sin.to(act)
        x = F.embedding(tokens, self.tok_embeddings).float()  # (B, T, dim), the residual stream
        for layer, block in enumerate(self.layers):
            x = block(x, cos, sin, cache, layer, mask)
        cache.length = start + T
        return x

    def piece_mode(self, positions: int, begin: int = 0) -> tuple[torch.dtype, bool]:
        """How the piece at position `begin` of `positions` new ones per row runs: (matmul input
        dtype, whether the linears use widened weights). On a CPU where the row alone (in pieces
        of PREFILL_ROWS positions) would run a piece of WIDENED_POSITIONS or more: the prompt
        dtype on widened weights; else the format's own dtype on its own kernels. Never depends
        on the number of rows."""
        piece = min(PREFILL_ROWS, positions - begin // PREFILL_ROWS * PREFILL_ROWS)  # this row's, alone
        if self.device.type == "cpu" and piece >= WIDENED_POSITIONS:
            return self.prompt_dtype, True
        return self.activation_dtype, False


def random_weights(args: ModelArgs, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded random weights under our names: a tiny model for tests and examples."""
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    from metagen.gguf import expected_shapes

    for name, shape in expected_shapes(args).items():
        if name.endswith("norm.weight"):
            tensors[name] = 1.0 + 0.1 * torch.randn(shape, generator=generator)
        else:
            std = 1.0 / math.sqrt(shape[-1])
            tensors[name] = torch.randn(shape, generator=generator) * std * 2.0
    return tensors
