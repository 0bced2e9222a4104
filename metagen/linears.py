"""The linear layers of each weight format: y = x @ W.T with W stored as float32 or bfloat16
(`FloatLinear`), int8 with per-row scales (`Int8Linear`) or int4 in groups (`Int4Linear`), one
class per format after gpt-fast's quantize.py, and the alignment the compact CPU kernels need.
A prompt runs on the weight widened to float32 (or bfloat16, on CPUs with bfloat16 units);
decoding runs the compact kernel. Which one a pass takes is `WIDENED`, set by the Transformer.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch import nn

WEIGHT_FORMATS = ("float32", "bfloat16", "int8", "int4")
FLOAT_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
INT4_GROUP = 32  # columns per int4 scale/zero group, as in GGUF's Q4 blocks
# The compact CPU kernels' contract, found by sweeping shapes and offsets on an AVX-512 CPU
# (avx512_vnni, avx512_bf16): _weight_int8pack_mm reads its weight and input with aligned
# vector loads once it takes four rows or more, and segfaults on a weight or input 8 or 24
# bytes off a 64-byte boundary; with rows of a length not a multiple of 32 it gives wrong
# sums even for one row. _convert_weight_to_int4pack_for_cpu refuses an output size not a
# multiple of 16 there (8 passes on AVX2). AVX2 CPUs take all of these; we assume the strictest.
KERNEL_ALIGNMENT = 64  # bytes
INT8_KERNEL_COLUMNS = 32  # in_features must be a multiple of this for the int8 kernel
INT4_KERNEL_ROWS = 16  # out_features must be a multiple of this for the int4 packing


# Whether the linears of the pass under way run on their widened weights (a prompt piece on a
# CPU) or on their own format (decoding). Transformer sets it for each pass; a ContextVar, so
# that the threads of metagen serve never see each other's.
WIDENED: ContextVar[bool] = ContextVar("widened", default=False)


@contextmanager
def widened_weights(on: bool):
    """Run the linears called inside on their widened weights (on) or their own format."""
    token = WIDENED.set(on)
    try:
        yield
    finally:
        WIDENED.reset(token)


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


def _align_kernel_buffers(module, state_dict, prefix, *args) -> None:
    """load_state_dict pre-hook: the compact kernels read weight and scale with aligned vector
    loads (KERNEL_ALIGNMENT), and tensors memory-mapped from a file start wherever it put them."""
    for name in ("weight", "scale"):
        if prefix + name in state_dict:
            state_dict[prefix + name] = aligned(state_dict[prefix + name])


class WidenedForPrompts(nn.Module):
    """What the linears share: a prompt runs on the weight widened to its rows' dtype (float32, or
    bfloat16 where the CPU has bfloat16 units), which a long-lived process may keep
    (Transformer.keep_prompt_weights) instead of widening it for every prompt: the same values,
    so the same results, for the memory of the copy."""

    kept_weight: torch.Tensor | None = None  # a kept widened() weight; None: widened each time

    def widened(self, dtype: torch.dtype) -> torch.Tensor:
        """The weight (out, in) in `dtype`."""
        return self.dequantized().to(dtype)

    def prompt_weight(self, x: torch.Tensor) -> torch.Tensor:
        """The weight widened to the dtype of the prompt rows `x`, on their device."""
        kept = self.kept_weight
        if kept is not None and kept.device == x.device and kept.dtype == x.dtype:
            return kept
        return self.widened(x.dtype).to(x.device)


class FloatLinear(WidenedForPrompts):
    """y = x @ W.T with W stored as float32 or bfloat16."""

    def __init__(self, in_features: int, out_features: int, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("weight", torch.empty(out_features, in_features, dtype=dtype))

    def quantize(self, weight: torch.Tensor) -> dict[str, torch.Tensor]:
        """The buffers that hold the float32 (out, in) `weight` in this linear's format."""
        return {"weight": weight.to(self.weight.dtype).contiguous()}

    def dequantized(self) -> torch.Tensor:
        return self.weight.float()

    def widened(self, dtype: torch.dtype) -> torch.Tensor:
        return self.weight.to(dtype)  # no copy when the weight is in `dtype` already

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if WIDENED.get():  # a prompt: bfloat16 weights under float32 rows are widened
            return F.linear(x, self.prompt_weight(x))
        return F.linear(x, self.weight)


class Int8Linear(WidenedForPrompts):
    """y = x @ W.T with W symmetric int8 per output row: w ≈ q * scale, |q| <= 127."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("weight", torch.empty(out_features, in_features, dtype=torch.int8))
        self.register_buffer("scale", torch.empty(out_features, dtype=torch.bfloat16))
        self.register_load_state_dict_pre_hook(_align_kernel_buffers)

    def quantize(self, weight: torch.Tensor) -> dict[str, torch.Tensor]:
        """The buffers that hold the float32 (out, in) `weight` in this linear's format."""
        scale = weight.abs().amax(dim=1).clamp(min=1e-8) / 127.0  # (out,)
        q = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)
        return {"weight": q.contiguous(), "scale": scale.to(torch.bfloat16)}

    @property
    def uses_kernel(self) -> bool:
        """Whether forward calls the CPU int8 kernel (which needs whole 32-column blocks)."""
        return self.weight.device.type == "cpu" and self.in_features % INT8_KERNEL_COLUMNS == 0

    def dequantized(self) -> torch.Tensor:
        """The weight as float32 (out, in): what the kernel computes with."""
        return self.weight.float() * self.scale.float()[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if WIDENED.get():
            # A prompt: float32 (or, with bfloat16 units, bfloat16) matmuls beat the compact
            # kernel by far, and widening the weight costs little next to them.
            return F.linear(x, self.prompt_weight(x))
        x2d = x.reshape(-1, x.shape[-1])
        if self.uses_kernel:
            y = torch.ops.aten._weight_int8pack_mm(aligned(x2d), self.weight, self.scale)
        else:
            y = F.linear(x2d, self.weight.to(x.dtype)) * self.scale.to(x.dtype)
        return y.reshape(*x.shape[:-1], self.out_features)


class Int4Linear(WidenedForPrompts):
    """y = x @ W.T with W int4 in groups of 32 columns with a scale and zero each (the layout of
    GGUF's Q4_1 blocks, so Q4_1 weights are held as they were quantized, up to bfloat16
    rounding of scales): w = (q - 8) * scale + zero, q in 0..15."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        # The kernel's packing of the nibbles is its own and machine-dependent.
        self.register_buffer("weight", torch.empty(out_features, in_features // 2, dtype=torch.uint8))
        self.register_buffer("scale", torch.empty(in_features // INT4_GROUP, out_features, 2, dtype=torch.bfloat16))
        # The same values two a byte in plain row order, for a cheap float32 dequantization
        # when prompts are prefilled.
        self.register_buffer("nibbles", torch.empty(out_features, in_features // 2, dtype=torch.uint8))
        self.register_load_state_dict_pre_hook(_align_kernel_buffers)

    def quantize(self, weight: torch.Tensor) -> dict[str, torch.Tensor]:
        """The buffers that hold the float32 (out, in) `weight` in this linear's format."""
        groups = weight.reshape(self.out_features, -1, INT4_GROUP)  # (out, in/32, 32)
        low, high = groups.amin(-1), groups.amax(-1)
        scale = ((high - low) / 15).clamp(min=1e-10)  # (out, in/32)
        q = torch.round((groups - low[..., None]) / scale[..., None]).clamp(0, 15)
        q = q.to(torch.int32).reshape(self.out_features, self.in_features)
        zero = low + 8 * scale
        scales_zeros = torch.stack([scale.t(), zero.t()], dim=-1).to(torch.bfloat16)  # (in/32, out, 2)
        nibbles = (q[:, 0::2] | (q[:, 1::2] << 4)).to(torch.uint8)  # (out, in/2)
        return {"weight": torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 8),
                "scale": scales_zeros.contiguous(), "nibbles": nibbles.contiguous()}

    def dequantized(self) -> torch.Tensor:
        """The weight as float32 (out, in): what the kernel computes with."""
        # w = (q - 8) * scale + zero = q * scale + (zero - 8 * scale); writing the two nibble
        # halves straight into a float tensor is about 5x faster than stacking them.
        q = torch.empty(*self.nibbles.shape, 2, dtype=torch.float32, device=self.nibbles.device)
        q[..., 0] = self.nibbles & 15
        q[..., 1] = self.nibbles >> 4
        scale, zero = self.scale.float().permute(2, 1, 0).contiguous()  # each (out, in/32)
        groups = q.view(self.out_features, -1, INT4_GROUP)  # (out, in/32, 32)
        groups.mul_(scale[..., None]).add_((zero - 8 * scale)[..., None])
        return q.view(self.out_features, self.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if WIDENED.get():
            return F.linear(x, self.prompt_weight(x))  # a prompt, as in Int8Linear
        if x.device.type != "cpu":
            raise RuntimeError("int4 weights run on the CPU only; use --dtype bfloat16 on a GPU")
        x2d = x.reshape(-1, x.shape[-1])
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(aligned(x2d), self.weight, INT4_GROUP, self.scale)
        return y.reshape(*x.shape[:-1], self.out_features)


def make_linear(weight_format: str, in_features: int, out_features: int) -> nn.Module:
    """The linear class of `weight_format` for an (out_features, in_features) weight."""
    if weight_format not in WEIGHT_FORMATS:
        raise ValueError(f"unknown weight format {weight_format!r}")
    if weight_format == "int4" and not (in_features % INT4_GROUP or out_features % INT4_KERNEL_ROWS):
        return Int4Linear(in_features, out_features)
    if weight_format in ("int8", "int4"):  # int4 falls back to int8 for shapes its kernel cannot take
        return Int8Linear(in_features, out_features)
    return FloatLinear(in_features, out_features, FLOAT_DTYPES[weight_format])
