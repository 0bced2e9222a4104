"""How far a left-padded decoding step is from the unpadded row (tests/test_model.py::
test_left_padding_gives_each_row_its_own_result), on whatever CPU or emulated CPU runs this."""
import torch

from metagen.model import Transformer, random_weights
from tests.conftest import tiny_args

torch.set_num_threads(1)
args = tiny_args(300)
model = Transformer.from_weights(args, random_weights(args, seed=1), "float32")


def full_forward(tokens):
    return model(tokens, model.new_cache(tokens.shape[0], tokens.shape[1]))


g = torch.Generator().manual_seed(2)
short = torch.randint(3, 300, (1, 4), generator=g)
long = torch.randint(3, 300, (1, 9), generator=g)
batch = torch.full((2, 9), 2, dtype=torch.long)
batch[0, 5:] = short[0]
batch[1] = long[0]
pad = torch.tensor([5, 0])
cache = model.new_cache(2, 12)
out = model(batch, cache, pad)
nxt = torch.tensor([[7], [8]])
step = model(nxt, cache, pad)[:, -1]
ref_short = full_forward(torch.cat([short, nxt[:1]], 1))[0, -1]
ref_long = full_forward(torch.cat([long, nxt[1:]], 1))[0, -1]
print(torch.backends.cpu.get_cpu_capability(),
      "prefill short %.2e long %.2e" % ((out[0, -1] - full_forward(short)[0, -1]).abs().max(),
                                        (out[1, -1] - full_forward(long)[0, -1]).abs().max()),
      "step short %.2e long %.2e" % ((step[0] - ref_short).abs().max(), (step[1] - ref_long).abs().max()),
      "allclose(1e-5)", torch.allclose(step[0], ref_short, atol=1e-5), torch.allclose(step[1], ref_long, atol=1e-5))
