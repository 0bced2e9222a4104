"""Key/value caches: rows continuing one shared prompt decode as if each held its own copy, and groups
of rows after different prompts decode in one pass as in separate ones."""

from __future__ import annotations

import pytest
import torch

from metagen.cache import JointPrefixCache, KVCache, SharedPrefixCache
from metagen.model import Transformer, random_weights


def tiny(weight_format: str) -> Transformer:
    from tests.conftest import tiny_args

    args = tiny_args(300)
    return Transformer.from_weights(args, random_weights(args, seed=3), weight_format)


def decode(model, cache, first: torch.Tensor, steps: int) -> list[torch.Tensor]:
    """Greedy steps from `first` (B, 1); the logits (B, V) of each."""
    out, tokens = [], first
    for _ in range(steps):
        logits = model(tokens, cache)[:, -1]
        out.append(logits)
        tokens = logits.argmax(-1)[:, None]
    return out


@pytest.mark.parametrize("weight_format", ["float32", "bfloat16", "int8", "int4"])
def test_rows_after_a_shared_prompt_decode_as_with_copies_of_it(weight_format):
    model = tiny(weight_format)
    prompt = torch.tensor([[(5 * i + 2) % 300 for i in range(24)]])
    rows, steps = 3, 6
    first = torch.tensor([[4], [77], [150]])  # each row's own first token, as sampled candidates have
    one = model.new_cache(1, prompt.shape[1] + steps)
    model(prompt, one, last_only=True)
    shared = SharedPrefixCache(one, rows, steps)
    copies = model.new_cache(rows, prompt.shape[1] + steps)
    model(prompt.expand(rows, -1), copies, last_only=True)
    for mine, theirs in zip(decode(model, shared, first, steps), decode(model, copies, first, steps)):
        assert torch.allclose(mine, theirs, atol=1e-4, rtol=1e-4)
    assert shared.length == copies.length == prompt.shape[1] + steps


def test_the_shared_prompt_is_held_once_and_left_as_it_was():
    model = tiny("float32")
    one = model.new_cache(1, 20)
    model(torch.tensor([[1, 2, 3, 4, 5]]), one)
    before = one.k.clone()
    shared = SharedPrefixCache(one, 4, 8)
    decode(model, shared, torch.tensor([[6], [7], [8], [9]]), 8)
    assert torch.equal(one.k, before) and one.length == 5  # what the next call may reuse
    assert shared.own.k.shape[1] == 4 and shared.own.k.shape[3] == 8  # the rows hold only their own slots
    with pytest.raises(ValueError, match="slots"):
        model(torch.tensor([[1]] * 4), shared)  # a ninth step does not fit


def shared_after(model, prompt: list[int], rows: int, steps: int) -> SharedPrefixCache:
    one = model.new_cache(1, len(prompt) + steps)
    model(torch.tensor([prompt]), one, last_only=True)
    return SharedPrefixCache(one, rows, steps)


@pytest.mark.parametrize("weight_format", ["float32", "int4"])
def test_groups_after_different_prompts_decode_in_one_pass_as_in_separate_ones(weight_format):
    model = tiny(weight_format)
    long_prompt, short_prompt = [(7 * i + 1) % 300 for i in range(30)], [(3 * i + 5) % 300 for i in range(11)]
    rows, steps = 2, 5
    first = torch.tensor([[4], [77]])
    apart = [shared_after(model, long_prompt, rows, steps), shared_after(model, short_prompt, rows, steps)]
    together = JointPrefixCache([shared_after(model, long_prompt, rows, steps),
                                 shared_after(model, short_prompt, rows, steps)])
    tokens = [first, first]
    joint_tokens = torch.cat(tokens)
    for _ in range(steps):
        separate = [model(t, cache)[:, -1] for t, cache in zip(tokens, apart)]
        joint = model(joint_tokens, together)[:, -1]
        assert torch.allclose(joint, torch.cat(separate), atol=1e-4, rtol=1e-4)  # each row at its own position
        tokens = [logits.argmax(-1)[:, None] for logits in separate]
        joint_tokens = joint.argmax(-1)[:, None]
        assert torch.equal(joint_tokens, torch.cat(tokens))
    assert together.length == steps and [g.length for g in together.groups] == [30 + steps, 11 + steps]
    with pytest.raises(ValueError, match="slots"):
        model(joint_tokens, together)  # a sixth step does not fit


def test_joined_groups_must_be_at_the_same_step():
    model = tiny("float32")
    ahead = shared_after(model, [1, 2, 3], 2, 4)
    model(torch.tensor([[5], [6]]), ahead)
    with pytest.raises(ValueError, match="same number of slots"):
        JointPrefixCache([ahead, shared_after(model, [1, 2], 2, 4)])


def test_an_empty_cache_like_another_has_its_layout():
    model = tiny("bfloat16")
    cache = KVCache.like(model.new_cache(1, 4), rows=3, max_len=9)
    assert cache.k.shape[1] == 3 and cache.k.shape[3] == 9 and cache.k.dtype == torch.bfloat16 and cache.length == 0
