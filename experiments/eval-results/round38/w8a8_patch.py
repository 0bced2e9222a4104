"""metagen with its decoding linears on fbgemm's dynamic int8 kernel (W8A8: int8 weights per
output row, each call's activations quantized to 8 bits with one scale for the whole call, all
rows together), built from the linears' own dequantized weights. W8A8=int4 patches the int4
linears, W8A8=all the int8 output head too. Everything else (prompts, widened weights) as is."""
import os, sys, warnings
import torch
from metagen import linears as L

warnings.filterwarnings("ignore", message=".*quantize_per_channel.*")
WHICH = os.environ.get("W8A8", "int4")
REDUCE_RANGE = os.environ.get("W8A8_REDUCE", "1") == "1"


def _packed(self):
    packed = getattr(self, "_w8a8", None)
    if packed is None:
        w = self.dequantized()
        scale = (w.abs().amax(1) / 127).clamp(min=1e-8).double()
        q = torch.quantize_per_channel(w, scale, torch.zeros(w.shape[0], dtype=torch.long), 0, torch.qint8)
        packed = self._w8a8 = torch.ops.quantized.linear_prepack(q, None)
    return packed


def _forward(original):
    def forward(self, x):
        if L.WIDENED.get() or x.device.type != "cpu" or (isinstance(self, L.Int8Linear) and not self.uses_kernel):
            return original(self, x)
        x2d = x.reshape(-1, x.shape[-1]).float()
        y = torch.ops.quantized.linear_dynamic(x2d, _packed(self), REDUCE_RANGE)
        return y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)
    return forward


L.Int4Linear.forward = _forward(L.Int4Linear.forward)
if WHICH == "all":
    L.Int8Linear.forward = _forward(L.Int8Linear.forward)
from metagen.cli import app
app(sys.argv[1:], standalone_mode=False)
