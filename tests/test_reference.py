"""Against the real SmolLM2-135M-Instruct weights: our tokenizer, logits, greedy and beam
outputs agree with transformers' independent implementation loaded from the same GGUF."""

from __future__ import annotations

import pytest
import torch

from metagen.config import GenerationConfig

pytestmark = pytest.mark.real_model

TOKENIZER_TABLE = [
    "The quick brown fox jumps over the lazy dog.",
    "Numbers: 12345 and 3.14159, also 1,000,000.",
    "Repeated   spaces,\ttabs\t\tand\n\n\nnewlines  ",
    "I'm sure you're right; they'll say we'd've known.",
    "Café, naïve, Ærøskøbing, Aoife Ní Bhriain",
    "林小雨走进了港口。日本語のテキスト。한국어",
    "Emoji: 🐉🔥 and 👩‍🚀",
    "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
    "",
]

# transformers has no "smollm" pre-tokenizer and falls back to plain byte-level splitting,
# so it merges non-ASCII numerals; llama.cpp and SmolLM2's own tokenizer.json split every
# \p{N} character alone first. We follow the original: these are checked by hand.
NUMERALS = ["Ⅻ", "½", "²", "٣", "३"]

PROMPTS = [
    [{"role": "user", "content": "Write a short story about a lighthouse keeper."}],
    [{"role": "system", "content": "You are a narrator for a fantasy game."},
     {"role": "user", "content": "Describe the tavern at dawn."}],
    "Once upon a time, in a harbour city of glass,",
]


@pytest.mark.parametrize("text", TOKENIZER_TABLE)
def test_tokenization_matches_reference(real_generator, reference_model, text):
    reference, _ = reference_model
    assert real_generator.tokenizer.encode(text) == reference.encode(text, add_special_tokens=False)


@pytest.mark.parametrize("numeral", NUMERALS)
def test_non_ascii_numerals_split_alone_like_the_original(real_generator, numeral):
    tokenizer = real_generator.tokenizer
    ids = tokenizer.encode(f"a{numeral}{numeral}b")
    pieces = [tokenizer.decode([i]) for i in ids]
    joined = "".join(pieces)
    assert joined == f"a{numeral}{numeral}b" or tokenizer.decode(ids) == f"a{numeral}{numeral}b"
    # each numeral is its own pre-token: the two copies tokenize identically and separately
    single = tokenizer.encode(numeral)
    assert ids[len(tokenizer.encode("a")):len(tokenizer.encode("a")) + 2 * len(single)] == single * 2


def test_chat_template_matches_reference(real_generator, reference_model):
    reference, _ = reference_model
    for prompt in PROMPTS[:2]:
        ours = real_generator.tokenizer.render_chat(prompt)
        theirs = reference.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        assert ours == theirs


@pytest.mark.parametrize("prompt", PROMPTS)
def test_next_token_logits_match_reference(real_generator, reference_model, prompt):
    _, reference = reference_model
    ids = real_generator.encode_prompt(prompt, chat=not isinstance(prompt, str))
    tokens = torch.tensor([ids])
    ours = real_generator.model(tokens, real_generator.model.new_cache(1, len(ids)))
    with torch.no_grad():
        theirs = reference(tokens).logits.float()
    assert (ours - theirs).abs().max().item() < 1e-3


def test_128_greedy_tokens_match_reference(real_generator, reference_model):
    _, reference = reference_model
    ids = real_generator.encode_prompt(PROMPTS[0])
    cfg = GenerationConfig(strategy="greedy", max_new_tokens=128, repetition_penalty=1.0)
    ours = real_generator.complete([ids], cfg)[0]
    with torch.no_grad():
        out = reference.generate(torch.tensor([ids]), max_new_tokens=128, do_sample=False,
                                 eos_token_id=sorted(real_generator.tokenizer.eos_ids), pad_token_id=2,
                                 repetition_penalty=1.0)
    theirs = out[0, len(ids):].tolist()
    assert len(ours.tokens) >= 64
    assert ours.tokens == theirs


@pytest.mark.parametrize("num_beams", [2, 4])
@pytest.mark.parametrize("prompt", PROMPTS[:2])
def test_beam_search_matches_reference(real_generator, reference_model, num_beams, prompt):
    _, reference = reference_model
    ids = real_generator.encode_prompt(prompt)
    cfg = GenerationConfig(strategy="beam", num_beams=num_beams, max_new_tokens=24, length_penalty=1.0,
                           early_stopping=True, repetition_penalty=1.0)
    ours = real_generator.complete([ids], cfg)[0]
    with torch.no_grad():
        out = reference.generate(torch.tensor([ids]), max_new_tokens=24, do_sample=False, num_beams=num_beams,
                                 length_penalty=1.0, early_stopping=True,
                                 eos_token_id=sorted(real_generator.tokenizer.eos_ids), pad_token_id=2,
                                 repetition_penalty=1.0)
    theirs = out[0, len(ids):].tolist()
    while theirs and theirs[-1] == 2 and len(theirs) > len(ours.tokens):  # transformers pads with pad_token_id
        theirs.pop()
    assert ours.tokens == theirs


def test_logprob_is_sum_of_raw_token_logprobs(real_generator):
    ids = real_generator.encode_prompt(PROMPTS[0])
    cfg = GenerationConfig(strategy="greedy", max_new_tokens=8, repetition_penalty=1.0)
    result = real_generator.complete([ids], cfg)[0]
    full = torch.tensor([ids + result.tokens])
    logits = real_generator.model(full, real_generator.model.new_cache(1, full.shape[1]))[0]
    logprobs = torch.log_softmax(logits[len(ids) - 1:-1], dim=-1)
    expected = logprobs.gather(1, torch.tensor(result.tokens)[:, None]).sum().item()
    assert result.logprob == pytest.approx(expected, abs=1e-3)
