"""The transformer: KV-cache decoding equals the full forward pass, padding is invisible,
weight formats stay close to float32, and a golden greedy sequence guards against drift."""

from __future__ import annotations

import pytest
import torch

from metagen.linears import Int4Linear, Int8Linear, make_linear
from metagen.model import Transformer, attend_after_prefix, random_weights


# Two float32 paths to the same logits (left padding against none) sum in other orders, and how
# far apart that leaves them depends on the BLAS kernels the CPU is given: MKL's Intel AVX2 ones
# (qemu -cpu Haswell-v4) left a padded step 1.3e-5 from the unpadded row, AVX-512 7.6e-6. The
# logits reach |6|; a mask that lets one pad position through moves them by 4 to 9.
PADDING_ATOL = 1e-4


@pytest.fixture(scope="module")
def tiny_model():
    from tests.conftest import tiny_args

    args = tiny_args(300)
    return Transformer.from_weights(args, random_weights(args, seed=1), "float32")


def full_forward(model, tokens):
    cache = model.new_cache(tokens.shape[0], tokens.shape[1])
    return model(tokens, cache)


def quantized_linear(weight: torch.Tensor, weight_format: str):
    """A linear of `weight_format` holding the float32 (out, in) `weight`."""
    linear = make_linear(weight_format, weight.shape[1], weight.shape[0])
    linear.load_state_dict(linear.quantize(weight), assign=True)
    return linear


def greedy_ids(model, prompts: list[list[int]], steps: int) -> list[list[int]]:
    """Greedy continuations of equally long prompts, decoded together with the KV cache."""
    tokens = torch.tensor(prompts)
    cache = model.new_cache(len(prompts), tokens.shape[1] + steps)
    logits = model(tokens, cache, last_only=True)[:, -1]
    chosen = []
    for _ in range(steps):
        chosen.append(logits.argmax(-1))
        logits = model(chosen[-1][:, None], cache)[:, -1]
    return torch.stack(chosen, dim=1).tolist()


GOLDEN_SHORT = [(7 * i + 3) % 304 for i in range(8)]  # below WIDENED_POSITIONS: the compact kernels
GOLDEN_LONG = [(11 * i + 5) % 304 for i in range(70)]  # a prompt widened to float32, then the kernels
# Recorded from the model before its linears became one class per format (golden, not derived).
GOLDEN = {
    "float32": ([122, 37, 61, 220, 291, 124, 280, 4, 27, 280, 31, 151, 280, 4, 95, 151],
                [255, 211, 6, 179, 206, 213, 179, 39, 43, 4, 82, 69, 95, 23, 49, 3]),
    "bfloat16": ([122, 37, 61, 220, 291, 124, 280, 4, 27, 280, 31, 151, 280, 4, 95, 151],
                 [255, 211, 6, 179, 206, 213, 179, 39, 43, 4, 82, 69, 95, 23, 49, 3]),
    "int8": ([122, 37, 61, 220, 291, 124, 280, 4, 27, 280, 31, 151, 149, 235, 18, 20],
             [255, 211, 6, 179, 206, 213, 179, 39, 43, 4, 82, 69, 95, 149, 181, 289]),
    "int4": ([122, 9, 179, 66, 159, 211, 299, 181, 49, 242, 280, 25, 165, 298, 211, 126],
             [255, 211, 179, 179, 211, 108, 265, 220, 20, 43, 248, 265, 227, 248, 39, 215]),
}


@pytest.mark.parametrize("weight_format", list(GOLDEN))
def test_greedy_tokens_are_the_golden_ones(weight_format):
    from tests.conftest import tiny_args

    args = tiny_args(304)  # every projection a multiple of 32 columns and 16 rows: the kernels run
    model = Transformer.from_weights(args, random_weights(args, seed=1), weight_format)
    short, long = GOLDEN[weight_format]
    assert greedy_ids(model, [GOLDEN_SHORT], 16) == [short]
    assert greedy_ids(model, [GOLDEN_LONG], 16) == [long]


@pytest.mark.parametrize("prompt_dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("weight_format", ["bfloat16", "int8", "int4"])
def test_kept_prompt_weights_change_nothing_but_the_time(weight_format, prompt_dtype):
    """metagen serve keeps prompts' widened weights: the same logits to the bit, the same tokens."""
    from tests.conftest import tiny_args

    args = tiny_args(304)
    model = Transformer.from_weights(args, random_weights(args, seed=1), weight_format)
    model.set_prompt_dtype(prompt_dtype)
    tokens = torch.tensor([GOLDEN_LONG])
    widened = full_forward(model, tokens)
    greedy = [greedy_ids(model, [GOLDEN_SHORT], 16)[0], greedy_ids(model, [GOLDEN_LONG], 16)[0]]
    kept = model.keep_prompt_weights()
    assert kept > 0 or (weight_format, prompt_dtype) == ("bfloat16", torch.bfloat16)  # nothing to widen
    assert torch.equal(full_forward(model, tokens), widened)
    assert [greedy_ids(model, [GOLDEN_SHORT], 16)[0], greedy_ids(model, [GOLDEN_LONG], 16)[0]] == greedy
    if prompt_dtype == torch.float32:
        assert greedy == list(GOLDEN[weight_format])


@pytest.mark.parametrize("weight_format", ["bfloat16", "int8", "int4"])
def test_bfloat16_prompts_are_as_close_to_float32_as_decoding_is(weight_format, monkeypatch):
    """On CPUs with bfloat16 units a prompt's matmuls and attention run in bfloat16 on the same
    widened weights: no further from the float32 model than the compact kernels (decoding's own
    path) are, and decoding untouched: a prompt too short to widen gives the golden tokens."""
    import metagen.model as model_module
    from tests.conftest import tiny_args

    args = tiny_args(304)
    weights = random_weights(args, seed=1)
    model = Transformer.from_weights(args, weights, weight_format)
    tokens = torch.tensor([GOLDEN_LONG])
    in_float32 = full_forward(model, tokens)
    model.set_prompt_dtype(torch.bfloat16)
    assert model.piece_mode(70) == (torch.bfloat16, True) and model.piece_mode(1) == (torch.bfloat16, False)
    in_bfloat16 = full_forward(model, tokens)
    assert not torch.equal(in_bfloat16, in_float32)
    assert greedy_ids(model, [GOLDEN_SHORT], 16)[0] == GOLDEN[weight_format][0]
    monkeypatch.setattr(model_module, "WIDENED_POSITIONS", 10_000)
    in_kernels = full_forward(model, tokens)
    exact = full_forward(Transformer.from_weights(args, weights, "float32"), tokens)
    assert (in_bfloat16 - exact).abs().mean() <= 1.05 * (in_kernels - exact).abs().mean()
    monkeypatch.undo()
    model.set_prompt_dtype(torch.float32)
    assert torch.equal(full_forward(model, tokens), in_float32)
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        model.set_prompt_dtype(torch.float16)


@pytest.mark.parametrize("weight_format", ["bfloat16", "int8", "int4"])
def test_a_row_decodes_the_same_alone_and_in_a_batch_of_64(weight_format):
    """The kernel (and dtype) depend on positions per row, never on how many rows there are."""
    from tests.conftest import tiny_args

    args = tiny_args(304)
    model = Transformer.from_weights(args, random_weights(args, seed=1), weight_format)
    prompts = [[(5 * row + 3 * i + 1) % 304 for i in range(6)] for row in range(64)]
    together = greedy_ids(model, prompts, 12)
    alone = [greedy_ids(model, [prompt], 12)[0] for prompt in prompts]
    assert together == alone  # 14 to 23 rows differed while 64 rows switched to float32


@pytest.mark.parametrize("prompt_dtype", [torch.float32, torch.bfloat16])
def test_a_long_prompt_decodes_the_same_alone_and_in_a_batch_of_16(prompt_dtype):
    """16 rows of 70 positions run in pieces of 32 positions, still widened (as one row alone
    runs its 70): the same tokens as each row alone, in either prompt dtype."""
    from tests.conftest import tiny_args

    args = tiny_args(304)
    model = Transformer.from_weights(args, random_weights(args, seed=1), "int4")
    model.set_prompt_dtype(prompt_dtype)
    prompts = [[(5 * row + 3 * i + 1) % 304 for i in range(70)] for row in range(16)]
    assert greedy_ids(model, prompts, 6) == [greedy_ids(model, [prompt], 6)[0] for prompt in prompts]


def test_kv_cache_steps_equal_full_forward(tiny_model):
    tokens = torch.randint(0, 300, (2, 12), generator=torch.Generator().manual_seed(0))
    full = full_forward(tiny_model, tokens)
    cache = tiny_model.new_cache(2, 12)
    prefill = tiny_model(tokens[:, :5], cache)
    steps = [tiny_model(tokens[:, i:i + 1], cache) for i in range(5, 12)]
    stepped = torch.cat([prefill, *steps], dim=1)
    assert torch.allclose(stepped, full, atol=1e-5), (stepped - full).abs().max()


def test_chunked_prefill_equals_full_forward(tiny_model):
    tokens = torch.randint(0, 300, (1, 10), generator=torch.Generator().manual_seed(1))
    full = full_forward(tiny_model, tokens)
    cache = tiny_model.new_cache(1, 10)
    chunked = torch.cat([tiny_model(tokens[:, :4], cache), tiny_model(tokens[:, 4:], cache)], dim=1)
    assert torch.allclose(chunked, full, atol=1e-5)


def test_long_prompts_are_processed_in_pieces_with_the_same_result(tiny_model, monkeypatch):
    import metagen.model as model_module

    g = torch.Generator().manual_seed(3)
    tokens = torch.randint(3, 300, (2, 11), generator=g)
    pad = torch.tensor([4, 0])
    whole_cache, piece_cache = tiny_model.new_cache(2, 11), tiny_model.new_cache(2, 11)
    whole = tiny_model(tokens, whole_cache, pad)
    whole_last = tiny_model(tokens, tiny_model.new_cache(2, 11), pad, last_only=True)
    monkeypatch.setattr(model_module, "PREFILL_ROWS", 6)  # 3 positions a piece for 2 rows
    pieces = tiny_model(tokens, piece_cache, pad)
    assert pieces.shape == whole.shape and torch.allclose(pieces, whole, atol=1e-5)
    assert torch.allclose(tiny_model(tokens, tiny_model.new_cache(2, 11), pad, last_only=True), whole_last, atol=1e-5)
    assert piece_cache.length == 11 and torch.allclose(piece_cache.k, whole_cache.k, atol=1e-5)


def test_left_padding_gives_each_row_its_own_result(tiny_model):
    g = torch.Generator().manual_seed(2)
    short = torch.randint(3, 300, (1, 4), generator=g)
    long = torch.randint(3, 300, (1, 9), generator=g)
    alone_short = full_forward(tiny_model, short)[0, -1]
    alone_long = full_forward(tiny_model, long)[0, -1]
    batch = torch.full((2, 9), 2, dtype=torch.long)
    batch[0, 5:] = short[0]
    batch[1] = long[0]
    pad = torch.tensor([5, 0])
    cache = tiny_model.new_cache(2, 12)
    out = tiny_model(batch, cache, pad)
    assert torch.allclose(out[0, -1], alone_short, atol=PADDING_ATOL)
    assert torch.allclose(out[1, -1], alone_long, atol=PADDING_ATOL)
    # and decoding steps with padding still match the unpadded rows
    nxt = torch.tensor([[7], [8]])
    step = tiny_model(nxt, cache, pad)[:, -1]
    ref_short = full_forward(tiny_model, torch.cat([short, nxt[:1]], 1))[0, -1]
    ref_long = full_forward(tiny_model, torch.cat([long, nxt[1:]], 1))[0, -1]
    assert torch.allclose(step[0], ref_short, atol=PADDING_ATOL)
    assert torch.allclose(step[1], ref_long, atol=PADDING_ATOL)


def test_last_only_matches_full_logits(tiny_model):
    tokens = torch.randint(0, 300, (1, 6), generator=torch.Generator().manual_seed(3))
    full = full_forward(tiny_model, tokens)
    last = tiny_model(tokens, tiny_model.new_cache(1, 6), last_only=True)
    assert torch.allclose(last[:, -1], full[:, -1], atol=1e-6)


def test_cache_overflow_is_refused(tiny_model):
    with pytest.raises(ValueError, match="KV cache holds 4 slots"):
        tiny_model(torch.zeros((1, 5), dtype=torch.long), tiny_model.new_cache(1, 4))


@pytest.mark.parametrize("weight_format, tolerance", [("bfloat16", 0.15), ("int8", 0.15)])
def test_compact_formats_stay_close_to_float32(weight_format, tolerance):
    from tests.conftest import tiny_args

    args = tiny_args(300)
    weights = random_weights(args, seed=1)
    exact = Transformer.from_weights(args, weights, "float32")
    compact = Transformer.from_weights(args, weights, weight_format)
    tokens = torch.randint(0, 300, (1, 8), generator=torch.Generator().manual_seed(4))
    a, b = full_forward(exact, tokens), full_forward(compact, tokens)
    assert compact.activation_dtype == torch.bfloat16
    assert (a - b).abs().max() / a.abs().max() < tolerance


def q4_1_like(weights):
    """Round every (out, in) weight to 16 levels per block of 32 columns, as GGUF's Q4_1 does."""
    out = {}
    for name, w in weights.items():
        if w.dim() != 2 or w.shape[1] % 32:
            out[name] = w
            continue
        g = w.reshape(w.shape[0], -1, 32)
        low, high = g.amin(-1, keepdim=True), g.amax(-1, keepdim=True)
        scale = (high - low) / 15
        out[name] = (torch.round((g - low) / scale) * scale + low).reshape(w.shape)
    return out


def test_int4_holds_q4_1_weights_as_quantized():
    from tests.conftest import tiny_args

    args = tiny_args(304)
    weights = q4_1_like(random_weights(args, seed=1))
    exact = Transformer.from_weights(args, weights, "float32")
    compact = Transformer.from_weights(args, weights, "int4")
    for block_exact, block_compact in zip(exact.layers, compact.layers):
        w, w4 = block_exact.feed_forward.w13.dequantized(), block_compact.feed_forward.w13.dequantized()
        assert (w - w4).abs().max() <= 0.01 * w.abs().max()  # bfloat16 rounding of scales only
    tokens = torch.randint(0, 304, (1, 8), generator=torch.Generator().manual_seed(4))
    a, b = full_forward(exact, tokens), full_forward(compact, tokens)
    assert (a - b).abs().max() / a.abs().max() < 0.1


@pytest.mark.parametrize("weight_format", ["int8", "int4"])
def test_dequantized_weights_are_what_the_kernels_compute_with(weight_format):
    weight = torch.randn(96, 128, generator=torch.Generator().manual_seed(2))
    linear = quantized_linear(weight, weight_format)
    eye = torch.eye(128, dtype=torch.bfloat16)
    through_kernel = linear(eye).float().t()  # column j: the weight's column j, as the kernel sees it
    assert torch.allclose(linear.dequantized(), through_kernel, rtol=1e-2, atol=1e-2 * weight.abs().max())


@pytest.mark.parametrize("weight_format", ["bfloat16", "int8", "int4"])
def test_long_prompts_run_in_float32_and_agree_with_the_compact_path(weight_format, monkeypatch):
    """From WIDENED_POSITIONS positions a compact model widens its weights to float32: the same
    weights, less rounding, so it lands at least as close to the float32 model as the kernels."""
    import metagen.model as model_module
    from tests.conftest import tiny_args

    args = tiny_args(300)
    weights = random_weights(args, seed=1)
    model = Transformer.from_weights(args, weights, weight_format)
    tokens = torch.randint(0, 300, (2, 70), generator=torch.Generator().manual_seed(6))
    assert model.piece_mode(70) == (torch.float32, True) and model.piece_mode(1) == (torch.bfloat16, False)
    # a 530-token prompt alone runs 512 positions widened, then its 18-position tail in the kernels
    assert model.piece_mode(530, 510) == (torch.float32, True) and model.piece_mode(530, 512) == (torch.bfloat16, False)
    wide = full_forward(model, tokens)
    monkeypatch.setattr(model_module, "WIDENED_POSITIONS", 10_000)
    narrow = full_forward(model, tokens)
    exact = full_forward(Transformer.from_weights(args, weights, "float32"), tokens)
    wide_error, narrow_error = (wide - exact).abs().mean(), (narrow - exact).abs().mean()
    assert wide_error <= narrow_error and not torch.equal(wide, narrow)


@pytest.mark.parametrize("weight_format", ["float32", "bfloat16", "int8", "int4"])
def test_export_and_rebuild_state_is_identical(weight_format):
    from tests.conftest import tiny_args

    args = tiny_args(300)
    model = Transformer.from_weights(args, random_weights(args, seed=1), weight_format)
    rebuilt = Transformer.from_state(args, model.export_state(), weight_format)
    tokens = torch.randint(0, 300, (1, 6), generator=torch.Generator().manual_seed(5))
    assert torch.equal(full_forward(model, tokens), full_forward(rebuilt, tokens))


def test_cache_reorder_moves_rows(tiny_model):
    cache = tiny_model.new_cache(3, 4)
    tiny_model(torch.tensor([[5, 6], [7, 8], [9, 10]]), cache)
    before = cache.k[:, :, :, :2].clone()
    cache.reorder(torch.tensor([2, 2, 0]))
    assert torch.equal(cache.k[:, 0, :, :2], before[:, 2])
    assert torch.equal(cache.k[:, 2, :, :2], before[:, 0])


# ----------------------------------------------------------------------------- the compact kernels' contract
# On AVX-512 CPUs torch's int8 kernel segfaults on inputs or weights off a 64-byte boundary
# (from four rows) and sums wrongly for rows not a multiple of 32 columns; AVX2 CPUs forgive
# both. These tests check the contract itself (addresses, shapes), so they fail on any CPU.


def at_offset(tensor: torch.Tensor, offset: int) -> torch.Tensor:
    """A copy of tensor whose data starts `offset` bytes past a 64-byte boundary."""
    nbytes = tensor.numel() * tensor.element_size()
    raw = torch.empty(nbytes + 128, dtype=torch.uint8)
    start = (-raw.data_ptr() % 64) + offset
    copy = raw[start:start + nbytes].view(tensor.dtype).view(tensor.shape).copy_(tensor)
    assert copy.data_ptr() % 64 == offset
    return copy


@pytest.mark.parametrize("offset", [0, 8, 24])
def test_aligned_copies_only_what_is_off_a_boundary(offset):
    from metagen.linears import aligned

    tensor = at_offset(torch.arange(100, dtype=torch.int8).reshape(4, 25), offset)
    result = aligned(tensor)
    assert result.data_ptr() % 64 == 0 and torch.equal(result, tensor)
    assert (result.data_ptr() == tensor.data_ptr()) == (offset == 0)


@pytest.mark.parametrize("in_features", [32, 96, 100, 600])
@pytest.mark.parametrize("rows", [1, 4, 8])
@pytest.mark.parametrize("offset", [0, 8, 24])
def test_int8_linear_is_right_for_any_width_rows_and_input_address(in_features, rows, offset):
    g = torch.Generator().manual_seed(in_features)
    linear = quantized_linear(torch.randn(64, in_features, generator=g), "int8")
    x = at_offset(torch.randn(rows, in_features, generator=g).to(torch.bfloat16), offset)
    expected = x.float() @ linear.dequantized().t()
    got = linear(x).float()
    assert (got - expected).abs().max() <= 0.02 * expected.abs().max()


@pytest.mark.parametrize("weight_format", ["int8", "int4"])
def test_stored_compact_weights_off_a_boundary_are_realigned(weight_format):
    linear = quantized_linear(torch.randn(64, 96, generator=torch.Generator().manual_seed(3)), weight_format)
    moved = {name: at_offset(t, 24) if name in ("weight", "scale") else t for name, t in linear.state_dict().items()}
    rebuilt = make_linear(weight_format, 96, 64)
    rebuilt.load_state_dict(moved, assign=True)
    assert rebuilt.weight.data_ptr() % 64 == 0 and rebuilt.scale.data_ptr() % 64 == 0
    x = torch.randn(8, 96, generator=torch.Generator().manual_seed(4)).to(torch.bfloat16)
    assert torch.equal(rebuilt(x), linear(x))


def test_int4_falls_back_to_int8_where_the_packing_needs_16_rows():
    assert type(make_linear("int4", 64, 24)) is Int8Linear  # 24 rows: not a multiple of 16
    assert type(make_linear("int4", 64, 48)) is Int4Linear


@pytest.mark.parametrize("weight_format", ["int8", "int4"])
def test_compact_weights_loaded_from_the_converted_cache_are_aligned(weight_format, tiny_gguf, tmp_path):
    """safetensors places tensors at 8-byte offsets after its header: the load must realign."""
    from metagen.converted import load_converted, save_converted
    from metagen.generator import build_from_gguf

    folder = tmp_path / "converted"
    save_converted(folder, *build_from_gguf(tiny_gguf, weight_format))
    model, _, _ = load_converted(folder)
    compact = [m for m in model.modules() if isinstance(m, (Int8Linear, Int4Linear))]
    assert compact
    for linear in compact:
        assert linear.weight.data_ptr() % 64 == 0 and linear.scale.data_ptr() % 64 == 0
    tokens = torch.randint(3, 200, (4, 6), generator=torch.Generator().manual_seed(7))
    assert torch.isfinite(full_forward(model, tokens)).all()  # four rows through every kernel


def test_attention_after_a_shared_prompt_gives_a_row_alone_the_bits_it_has_in_a_batch():
    # the last candidate still decoding runs alone; its text must not change for that
    generator = torch.Generator().manual_seed(0)
    q = torch.randn(4, 9, 1, 64, generator=generator)  # 9 query heads over 3 key/value heads
    prefix_k, prefix_v = torch.randn(2, 3, 700, 64, generator=generator)
    keys, values = torch.randn(2, 4, 3, 5, 64, generator=generator)
    batch = attend_after_prefix(q, prefix_k, prefix_v, keys, values)
    for row in range(4):
        alone = attend_after_prefix(q[row:row + 1], prefix_k, prefix_v, keys[row:row + 1], values[row:row + 1])
        assert torch.equal(alone, batch[row:row + 1])
