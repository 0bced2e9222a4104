"""A llama-family decoder-only transformer with a preallocated KV cache.

Token embeddings; N blocks of RMSNorm -> causal grouped-query self-attention with rotary
position embeddings (rotate-half form, as in the original checkpoints) -> residual ->
RMSNorm -> SwiGLU feed-forward -> residual; final RMSNorm; output head (tied to the
embeddings when the file has none).  References: Llama (Touvron et al. 2023), RoFormer
(Su et al. 2021), GLU variants (Shazeer 2020), RMSNorm (Zhang & Sennrich 2019); layout
after gpt-fast's model.py and llama2.c.

Batches of prompts of different lengths are left-padded.  Each row's first real token
sits at position 0, so a padded row computes what it would compute alone.  Q/K/V and
gate/up projections are fused into one matmul each; weights may be stored as float32,
bfloat16 or int8 with per-row scales (`WeightLinear`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from metagen.gguf import ModelArgs

WEIGHT_FORMATS = ("float32", "bfloat16", "int8", "int4")
INT4_GROUP = 32  # columns per int4 scale/zero group, as in GGUF's Q4 blocks
# From this many token rows in one forward call, compact formats compute in float32 on a CPU
# (int4 on 2 AVX2 cores: a 3072x576 matmul of 128 rows takes 9.9 ms in the kernel and 5.8 ms
# widened; the crossing is near 64 rows. A 900-token prompt: 4.8 s -> 2.5 s; bfloat16 12.8 s -> 2.2 s).
FLOAT32_ROWS = 64
# A prompt is processed at most this many token rows (batch x positions) at a time, so
# that activations and attention scores stay small: 16 prompts of 1,000 tokens in one pass
# would hold 16,000 rows (the gate/up output alone 196 MB, the scores 576 MB). One prompt of
# 1,286 tokens: peak RSS 483 MiB in one pass, 452 MiB in pieces, at the same speed.
PREFILL_ROWS = 512
# The compact CPU kernels' contract, found by sweeping shapes and offsets on an AVX-512 CPU
# (avx512_vnni, avx512_bf16): _weight_int8pack_mm reads its weight and input with aligned
# vector loads once it takes four rows or more, and segfaults on a weight or input 8 or 24
# bytes off a 64-byte boundary; with rows of a length not a multiple of 32 it gives wrong
# sums even for one row. _convert_weight_to_int4pack_for_cpu refuses an output size not a
# multiple of 16 there (8 passes on AVX2). AVX2 CPUs take all of these; we assume the strictest.
KERNEL_ALIGNMENT = 64  # bytes
INT8_KERNEL_COLUMNS = 32  # in_features must be a multiple of this for the int8 kernel
INT4_KERNEL_ROWS = 16  # out_features must be a multiple of this for the int4 packing


def aligned(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor`, or a contiguous copy of it, whose data starts on a KERNEL_ALIGNMENT boundary.

    Tensors loaded from a file (safetensors, memory-mapped) start wherever the file put them;
    torch's own CPU allocations are 64-byte aligned, so a copy is enough. No-op off the CPU."""
    if tensor.device.type != "cpu" or (tensor.is_contiguous() and tensor.data_ptr() % KERNEL_ALIGNMENT == 0):
        return tensor
    copy = torch.empty_like(tensor, memory_format=torch.contiguous_format).copy_(tensor)
    if copy.data_ptr() % KERNEL_ALIGNMENT:
        # An allocator that does not align to 64 (not torch's default): over-allocate and slice.
        nbytes = copy.numel() * copy.element_size()
        raw = torch.empty(nbytes + KERNEL_ALIGNMENT, dtype=torch.uint8)
        start = -raw.data_ptr() % KERNEL_ALIGNMENT
        copy = raw[start:start + nbytes].view(tensor.dtype).view(tensor.shape).copy_(tensor)
    return copy


class WeightLinear(nn.Module):
    """y = x @ W.T with W stored as float32, bfloat16, int8 with a per-row scale, or int4
    in groups of 32 columns with a scale and zero each (the layout of GGUF's Q4_1 blocks,
    so Q4_1 weights are held as they were quantized, up to bfloat16 rounding of scales)."""

    def __init__(self, weight: torch.Tensor, weight_format: str = "float32"):
        super().__init__()
        if weight_format not in WEIGHT_FORMATS:
            raise ValueError(f"unknown weight format {weight_format!r}")
        self.weight_format = weight_format
        self.out_features, self.in_features = weight.shape
        if weight_format == "int4" and (self.in_features % INT4_GROUP or self.out_features % INT4_KERNEL_ROWS):
            weight_format = self.weight_format = "int8"  # shapes the int4 kernel cannot take
        if weight_format == "int4":
            # Asymmetric 4-bit per group: w = (q - 8) * scale + zero, q in 0..15.
            groups = weight.float().reshape(self.out_features, -1, INT4_GROUP)  # (out, in/32, 32)
            low, high = groups.amin(-1), groups.amax(-1)
            scale = ((high - low) / 15).clamp(min=1e-10)  # (out, in/32)
            q = torch.round((groups - low[..., None]) / scale[..., None]).clamp(0, 15)
            q = q.to(torch.int32).reshape(self.out_features, self.in_features)
            zero = low + 8 * scale
            scales_zeros = torch.stack([scale.t(), zero.t()], dim=-1).to(torch.bfloat16)  # (in/32, out, 2)
            self.register_buffer("weight", torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 8), persistent=True)
            self.register_buffer("scale", scales_zeros.contiguous(), persistent=True)
            # The same values two a byte in plain row order (the kernel's packing is its own and
            # machine-dependent), for a cheap float32 dequantization when prompts are prefilled.
            nibbles = (q[:, 0::2] | (q[:, 1::2] << 4)).to(torch.uint8)  # (out, in/2)
            self.register_buffer("nibbles", nibbles.contiguous(), persistent=True)
        elif weight_format == "int8":
            # Symmetric per-output-row int8: w ≈ q * scale, |q| <= 127.
            weight = weight.float()
            scale = weight.abs().amax(dim=1).clamp(min=1e-8) / 127.0  # (out,)
            q = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)
            self.register_buffer("weight", q.contiguous(), persistent=True)
            self.register_buffer("scale", scale.to(torch.bfloat16), persistent=True)
        else:
            dtype = torch.float32 if weight_format == "float32" else torch.bfloat16
            self.register_buffer("weight", weight.to(dtype).contiguous(), persistent=True)
            self.scale = None

    @classmethod
    def from_stored(cls, weight: torch.Tensor, scale: torch.Tensor | None, weight_format: str,
                    nibbles: torch.Tensor | None = None) -> "WeightLinear":
        """Rebuild from buffers saved by Transformer.export_state (no re-quantization)."""
        linear = cls.__new__(cls)
        nn.Module.__init__(linear)
        # A linear the int4 kernel cannot take was stored as int8: the dtype tells.
        weight_format = {torch.int8: "int8", torch.uint8: "int4"}.get(weight.dtype, weight_format)
        linear.weight_format = weight_format
        linear.out_features, linear.in_features = weight.shape
        if weight_format == "int4":
            linear.in_features *= 2  # two 4-bit values a byte
        elif weight_format == "int8" and scale is None:
            raise ValueError("int8 weights need their scales")
        if weight_format == "int4" and (scale is None or nibbles is None):
            raise ValueError("int4 weights need their scales and plain nibbles")
        if weight_format in ("int8", "int4"):
            # The compact kernels read these with aligned vector loads (KERNEL_ALIGNMENT).
            weight, scale = aligned(weight), aligned(scale)
        linear.register_buffer("weight", weight, persistent=True)
        if weight_format == "int4":
            linear.register_buffer("nibbles", nibbles, persistent=True)
        if scale is None:
            linear.scale = None
        else:
            linear.register_buffer("scale", scale, persistent=True)
        return linear

    @property
    def uses_int8_kernel(self) -> bool:
        """Whether forward calls the CPU int8 kernel (which needs whole 32-column blocks)."""
        return (self.weight_format == "int8" and self.weight.device.type == "cpu"
                and self.in_features % INT8_KERNEL_COLUMNS == 0)

    @property
    def compute_dtype(self) -> torch.dtype:
        return torch.float32 if self.weight_format == "float32" else torch.bfloat16

    def dequantized(self) -> torch.Tensor:
        """The weight as float32 (out, in): what the compact kernels compute with."""
        if self.weight_format == "int8":
            return self.weight.float() * self.scale.float()[:, None]
        if self.weight_format == "int4":
            # w = (q - 8) * scale + zero = q * scale + (zero - 8 * scale); writing the two nibble
            # halves straight into a float tensor is about 5x faster than stacking them.
            q = torch.empty(*self.nibbles.shape, 2, dtype=torch.float32, device=self.nibbles.device)
            q[..., 0] = self.nibbles & 15
            q[..., 1] = self.nibbles >> 4
            scale, zero = self.scale.float().permute(2, 1, 0).contiguous()  # each (out, in/32)
            groups = q.view(self.out_features, -1, INT4_GROUP)  # (out, in/32, 32)
            groups.mul_(scale[..., None]).add_((zero - 8 * scale)[..., None])
            return q.view(self.out_features, self.in_features)
        return self.weight.float()

    def _int4_mm(self, x2d: torch.Tensor) -> torch.Tensor:
        if x2d.device.type == "cpu":
            return torch.ops.aten._weight_int4pack_mm_for_cpu(aligned(x2d), self.weight, INT4_GROUP, self.scale)
        raise RuntimeError("int4 weights run on the CPU only; use --dtype bfloat16 on a GPU")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight_format == "float32" or (self.weight_format == "bfloat16" and x.dtype == torch.bfloat16):
            return F.linear(x, self.weight)
        if x.dtype == torch.float32:
            # Many rows at once (a prompt): float32 matmuls beat the compact kernels by far on
            # CPUs without bfloat16 units, and widening the weight costs little next to them.
            return F.linear(x, self.dequantized())
        shape = x.shape
        x2d = x.reshape(-1, shape[-1])
        if self.weight_format == "int4":
            y = self._int4_mm(x2d)
        elif self.uses_int8_kernel:
            y = torch.ops.aten._weight_int8pack_mm(aligned(x2d), self.weight, self.scale)
        else:
            y = F.linear(x2d, self.weight.to(x.dtype)) * self.scale.to(x.dtype)
        return y.reshape(*shape[:-1], self.out_features)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim), requires_grad=False)

    def forward(self, x: torch.Tensor, out_dtype: torch.dtype) -> torch.Tensor:
        # Normalize in float32 whatever the matmul dtype, as the reference does;
        # F.rms_norm does it in one kernel instead of six.
        return F.rms_norm(x.float(), (x.shape[-1],), self.weight, self.eps).to(out_dtype)


class KVCache:
    """Preallocated keys and values for every layer: (L, B, n_kv_heads, S, head_dim)."""

    def __init__(self, args: ModelArgs, batch_size: int, max_len: int, dtype: torch.dtype,
                 device: torch.device | str = "cpu"):
        shape = (args.n_layers, batch_size, args.n_kv_heads, max_len, args.head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.max_len = max_len
        self.length = 0  # slots filled so far (the same for every row)

    @property
    def batch_size(self) -> int:
        return self.k.shape[1]

    def repeat_rows(self, rows: int) -> "KVCache":
        """A cache of `rows` rows, each a copy of this one-row cache's filled slots."""
        if self.batch_size != 1:
            raise ValueError("only a one-row cache can be repeated")
        copy = KVCache.__new__(KVCache)
        copy.k, copy.v = self.k.repeat(1, rows, 1, 1, 1), self.v.repeat(1, rows, 1, 1, 1)
        copy.max_len, copy.length = self.max_len, self.length
        return copy

    def row(self, index: int) -> "KVCache":
        """A one-row view of row `index` (shares memory with this cache)."""
        view = KVCache.__new__(KVCache)
        view.k, view.v = self.k[:, index:index + 1], self.v[:, index:index + 1]
        view.max_len, view.length = self.max_len, self.length
        return view

    def copy_prefix(self, source: "KVCache", length: int) -> None:
        """Take the first `length` slots from source (the same rows), and mark them filled."""
        self.k[:, :, :, :length] = source.k[:, :, :, :length]
        self.v[:, :, :, :length] = source.v[:, :, :, :length]
        self.length = length

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep rows[i] as row i (beam search), for the filled slots only."""
        n = self.length
        self.k[:, :, :, :n] = self.k[:, rows, :, :n]
        self.v[:, :, :, :n] = self.v[:, rows, :, :n]


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


class Attention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.n_heads = args.n_heads
        self.n_kv_heads = args.n_kv_heads
        self.head_dim = args.head_dim
        self.q_size = args.n_heads * args.head_dim
        self.kv_size = args.n_kv_heads * args.head_dim
        self.wqkv: WeightLinear | None = None  # fused (q_size + 2 kv_size, dim)
        self.wo: WeightLinear | None = None

    def forward(self, x, cos, sin, cache: KVCache, layer: int, mask: torch.Tensor | None):
        B, T, _ = x.shape
        qkv = self.wqkv(x).view(B, T, self.n_heads + 2 * self.n_kv_heads, self.head_dim)
        # Rotate queries and keys together: one pass over (B, T, n_heads + n_kv, head_dim).
        qk = apply_rope(qkv[:, :, : self.n_heads + self.n_kv_heads], cos, sin)
        q = qk[:, :, : self.n_heads].transpose(1, 2)  # (B, n_heads, T, head_dim)
        k = qk[:, :, self.n_heads :].transpose(1, 2)  # (B, n_kv, T, head_dim)
        v = qkv[:, :, self.n_heads + self.n_kv_heads :].transpose(1, 2)  # (B, n_kv, T, head_dim)
        start = cache.length
        cache.k[layer, :, :, start:start + T] = k
        cache.v[layer, :, :, start:start + T] = v
        keys = cache.k[layer, :, :, :start + T]  # (B, n_kv, S, head_dim)
        values = cache.v[layer, :, :, :start + T]
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
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.hidden = args.ffn_dim
        self.w13: WeightLinear | None = None  # fused gate and up: (2 ffn_dim, dim)
        self.w2: WeightLinear | None = None

    def forward(self, x):
        gate, up = self.w13(x).split(self.hidden, dim=-1)
        return self.w2(F.silu(gate) * up)


class TransformerBlock(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.attention = Attention(args)
        self.feed_forward = FeedForward(args)
        self.attention_norm = RMSNorm(args.dim, args.norm_eps)
        self.ffn_norm = RMSNorm(args.dim, args.norm_eps)

    def forward(self, x, cos, sin, cache, layer, mask):
        # x is the float32 residual stream; only the matmul inputs take the compact dtype.
        act = cos.dtype
        h = x + self.attention(self.attention_norm(x, act), cos, sin, cache, layer, mask)
        return h + self.feed_forward(self.ffn_norm(h, act))


class Transformer(nn.Module):
    """The model. Build with `Transformer.from_weights(args, tensors, weight_format)`."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.layers = nn.ModuleList(TransformerBlock(args) for _ in range(args.n_layers))
        self.norm = RMSNorm(args.dim, args.norm_eps)
        self.tok_embeddings: torch.Tensor | None = None  # (V, dim) float32, for the lookup
        self.output: WeightLinear | None = None
        self.weight_format = "float32"
        self._rope_len = 0
        self._cos = self._sin = None

    # -- building -------------------------------------------------------------------
    @classmethod
    def from_weights(cls, args: ModelArgs, tensors: dict[str, torch.Tensor],
                     weight_format: str = "float32") -> "Transformer":
        """Build from our per-projection names (gguf.WEIGHT_MAP), fusing Q/K/V and gate/up."""
        model = cls(args)
        model.weight_format = weight_format
        t = {name: torch.as_tensor(value) for name, value in tensors.items()}
        act = torch.float32 if weight_format == "float32" else torch.bfloat16
        embeddings = t["tok_embeddings.weight"].float().contiguous()
        # The residual stream stays float32 in every format (errors would otherwise pile up
        # over the layers), so the lookup table does too.
        model.tok_embeddings = embeddings
        if args.tied_embeddings and weight_format == "float32":
            # One (V, dim) matrix serves both the lookup and the output head.
            model.output = WeightLinear.from_stored(model.tok_embeddings, None, weight_format)
        else:
            out_weight = embeddings if args.tied_embeddings else t["output.weight"].float()
            # GGUF files keep the output head at 8 bits or more (Q8_0 or Q6_K): 4 bits there
            # costs more quality than anywhere else, so int4 models keep an int8 head.
            model.output = WeightLinear(out_weight, "int8" if weight_format == "int4" else weight_format)
        model.norm.weight.data = t["norm.weight"].float()
        for i, block in enumerate(model.layers):
            p = f"layers.{i}."
            wqkv = torch.cat([t[p + "attention.wq.weight"], t[p + "attention.wk.weight"],
                              t[p + "attention.wv.weight"]]).float()
            block.attention.wqkv = WeightLinear(wqkv, weight_format)
            block.attention.wo = WeightLinear(t[p + "attention.wo.weight"].float(), weight_format)
            w13 = torch.cat([t[p + "feed_forward.w1.weight"], t[p + "feed_forward.w3.weight"]]).float()
            block.feed_forward.w13 = WeightLinear(w13, weight_format)
            block.feed_forward.w2 = WeightLinear(t[p + "feed_forward.w2.weight"].float(), weight_format)
            block.attention_norm.weight.data = t[p + "attention_norm.weight"].float()
            block.ffn_norm.weight.data = t[p + "ffn_norm.weight"].float()
        model.eval()
        return model

    def export_state(self) -> dict[str, torch.Tensor]:
        """Every tensor needed to rebuild this model as it is (fused, in its weight format)."""
        state = {"tok_embeddings": self.tok_embeddings, "norm.weight": self.norm.weight.data}
        linears = {"output": self.output}
        for i, block in enumerate(self.layers):
            p = f"layers.{i}."
            linears.update({p + "attention.wqkv": block.attention.wqkv, p + "attention.wo": block.attention.wo,
                            p + "feed_forward.w13": block.feed_forward.w13, p + "feed_forward.w2": block.feed_forward.w2})
            state[p + "attention_norm.weight"] = block.attention_norm.weight.data
            state[p + "ffn_norm.weight"] = block.ffn_norm.weight.data
        for name, linear in linears.items():
            state[name + ".weight"] = linear.weight
            if linear.scale is not None:
                state[name + ".scale"] = linear.scale
            if linear.weight_format == "int4":
                state[name + ".nibbles"] = linear.nibbles
        if state["output.weight"].data_ptr() == self.tok_embeddings.data_ptr():
            del state["output.weight"]  # tied and shared: stored once, as the embeddings
        return {name: tensor.contiguous() for name, tensor in state.items()}

    @classmethod
    def from_state(cls, args: ModelArgs, state: dict[str, torch.Tensor], weight_format: str) -> "Transformer":
        """Inverse of export_state."""
        model = cls(args)
        model.weight_format = weight_format

        def linear(name):
            return WeightLinear.from_stored(state[name + ".weight"], state.get(name + ".scale"), weight_format,
                                            state.get(name + ".nibbles"))

        model.tok_embeddings = state["tok_embeddings"]
        model.output = (linear("output") if "output.weight" in state
                        else WeightLinear.from_stored(model.tok_embeddings, None, weight_format))
        model.norm.weight.data = state["norm.weight"]
        for i, block in enumerate(model.layers):
            p = f"layers.{i}."
            block.attention.wqkv = linear(p + "attention.wqkv")
            block.attention.wo = linear(p + "attention.wo")
            block.feed_forward.w13 = linear(p + "feed_forward.w13")
            block.feed_forward.w2 = linear(p + "feed_forward.w2")
            block.attention_norm.weight.data = state[p + "attention_norm.weight"]
            block.ffn_norm.weight.data = state[p + "ffn_norm.weight"]
        model.eval()
        return model

    @property
    def activation_dtype(self) -> torch.dtype:
        return torch.float32 if self.weight_format == "float32" else torch.bfloat16

    @property
    def device(self) -> torch.device:
        return self.tok_embeddings.device

    def to_device(self, device: str | torch.device) -> "Transformer":
        self.to(device)
        self.tok_embeddings = self.tok_embeddings.to(device)
        self._rope_len = 0
        return self

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
        chunk = max(1, PREFILL_ROWS // B)
        if T > chunk:
            # A long prompt in pieces: the same result, with activations (and attention
            # scores) for at most PREFILL_ROWS rows alive at once instead of B * T.
            outs = []
            for begin in range(0, T, chunk):
                final = begin + chunk >= T
                head = ("last" if final else "none") if last_only else "all"
                out = self._forward(tokens[:, begin:begin + chunk], cache, pad, head)
                if out is not None:
                    outs.append(out)
            return torch.cat(outs, dim=1)
        return self._forward(tokens, cache, pad, head="last" if last_only else "all")

    def _forward(self, tokens: torch.Tensor, cache: KVCache, pad: torch.Tensor | None,
                 head: str) -> torch.Tensor | None:
        """One pass; head: logits for "all" positions, the "last" one, or "none" (None)."""
        B, T = tokens.shape
        start = cache.length
        slots = torch.arange(start, start + T, device=tokens.device)  # (T,)
        cos_table, sin_table = self._rope(start + T)
        if pad is None:
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
        act = self.compute_dtype(B * T)
        cos, sin = cos.to(act), sin.to(act)
        x = F.embedding(tokens, self.tok_embeddings).float()  # (B, T, dim), the residual stream
        for layer, block in enumerate(self.layers):
            x = block(x, cos, sin, cache, layer, mask)
        cache.length = start + T
        if head == "none":
            return None
        if head == "last":
            x = x[:, -1:]
        return self.output(self.norm(x, self.compute_dtype(x.shape[0] * x.shape[1]))).float()

    def compute_dtype(self, rows: int) -> torch.dtype:
        """The matmul input dtype for `rows` token rows: the format's own, or float32 for many
        rows on a CPU (prompt processing), where compact weights are widened per matmul."""
        if self.device.type == "cpu" and rows >= FLOAT32_ROWS:
            return torch.float32
        return self.activation_dtype


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
