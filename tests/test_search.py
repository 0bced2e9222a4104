"""Greedy decoding and sampling on the tiny model: stops, batches, streaming, seeds (beam search: test_beam.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from metagen.config import GenerationConfig
from metagen.search import PlainPrompts, TextTracker, decode_loop
from tests.conftest import PROMPTS, TINY_MERGES, encode

def seeded(n, seed=0):
    return [torch.Generator().manual_seed(seed + i) for i in range(n)]


class CharTokenizer:
    """Decodes each id to one character: enough to test TextTracker."""

    def decode(self, ids):
        return "".join(chr(i) for i in ids)


@pytest.mark.parametrize("stop, text, expected", [
    (("END",), "abcENDxyz", "abc"),
    (("\n",), "line one\nline two", "line one"),
    (("xx", "b"), "aaab", "aaa"),
    ((), "no stops here", "no stops here"),
])
def test_text_tracker_cuts_stop_strings_exactly(stop, text, expected):
    tracker = TextTracker(CharTokenizer(), stop)
    streamed = ""
    for ch in text:
        streamed += tracker.push(ord(ch))
        if tracker.stopped:
            break
    streamed += tracker.finish()
    assert tracker.text == expected
    assert streamed == expected  # nothing of a stop string is ever streamed


def test_text_tracker_holds_back_a_possible_stop_prefix():
    tracker = TextTracker(CharTokenizer(), ("STOP",))
    assert tracker.push(ord("a")) == "a"
    assert tracker.push(ord("S")) == ""  # could be the start of STOP
    assert tracker.push(ord("T")) == ""
    assert tracker.push(ord("x")) == "STx"


def test_stop_strings_cut_model_output_across_token_boundaries(tiny_generator):
    cfg = GenerationConfig(strategy="greedy", max_new_tokens=40, repetition_penalty=1.0)
    ids = encode(tiny_generator, PROMPTS[:1])
    free = decode_loop(tiny_generator.model, tiny_generator.tokenizer, ids, cfg)[0].sequences[0]
    assert len(free.text) > 6
    stop = free.text[3:6]  # three characters that may span tokens
    stopped = decode_loop(tiny_generator.model, tiny_generator.tokenizer, ids, replace(cfg, stop=(stop,)))[0]
    seq = stopped.sequences[0]
    assert seq.finish_reason == "stop"
    assert seq.text == free.text[: free.text.find(stop)]
    assert stop not in seq.text


def test_each_row_of_a_batch_stops_on_its_own(tiny_generator):
    cfg = GenerationConfig(strategy="greedy", max_new_tokens=30, repetition_penalty=1.0)
    ids = encode(tiny_generator, PROMPTS[:2])
    alone = [decode_loop(tiny_generator.model, tiny_generator.tokenizer, [p], cfg)[0].sequences[0] for p in ids]
    stop = alone[0].text[5:8]
    cfg = replace(cfg, stop=(stop,))
    batch = decode_loop(tiny_generator.model, tiny_generator.tokenizer, ids, cfg)
    assert batch[0].sequences[0].finish_reason == "stop"
    assert batch[0].sequences[0].text == alone[0].text[: alone[0].text.find(stop)]
    if stop not in alone[1].text:
        assert batch[1].sequences[0].text == alone[1].text
        assert batch[1].sequences[0].finish_reason == "length"


@pytest.mark.parametrize("strategy", ["greedy", "sample"])
def test_batch_rows_equal_decoding_alone(tiny_generator, strategy):
    cfg = GenerationConfig(strategy=strategy, max_new_tokens=24, repetition_penalty=1.2, top_k=20)
    ids = encode(tiny_generator, PROMPTS)
    batch = decode_loop(tiny_generator.model, tiny_generator.tokenizer, ids, cfg, seeded(len(ids)))
    for row, prompt in enumerate(ids):
        alone = decode_loop(tiny_generator.model, tiny_generator.tokenizer, [prompt], cfg, seeded(1, row))[0]
        assert batch[row].sequences[0].tokens == alone.sequences[0].tokens


def test_temperature_zero_equals_greedy(tiny_generator):
    ids = encode(tiny_generator, PROMPTS[:2])
    greedy = tiny_generator.complete(ids, GenerationConfig(strategy="greedy", max_new_tokens=16))
    zero = tiny_generator.complete(ids, GenerationConfig(strategy="sample", temperature=0.0, max_new_tokens=16))
    assert [c.tokens for c in greedy] == [c.tokens for c in zero]


def test_same_seed_same_text_and_other_seeds_differ(tiny_generator):
    ids = encode(tiny_generator, PROMPTS[:1])
    cfg = GenerationConfig(strategy="sample", max_new_tokens=24, temperature=1.0, top_k=0, top_p=1.0)
    a = tiny_generator.complete(ids, cfg, seeds=[5])[0]
    b = tiny_generator.complete(ids, cfg, seeds=[5])[0]
    others = {tuple(tiny_generator.complete(ids, cfg, seeds=[s])[0].tokens) for s in range(6, 10)}
    assert a.tokens == b.tokens and a.text == b.text
    assert len(others | {tuple(a.tokens)}) > 1


def test_unseeded_runs_draw_and_record_a_seed(tiny_generator):
    ids = encode(tiny_generator, PROMPTS[:1])
    cfg = GenerationConfig(strategy="sample", max_new_tokens=8)
    first = tiny_generator.complete(ids, cfg)[0]
    again = tiny_generator.complete(ids, replace(cfg, seed=first.seed))[0]
    assert again.tokens == first.tokens


def test_streamed_pieces_add_up_to_the_text(tiny_generator):
    pieces: dict[int, list[str]] = {0: [], 1: []}
    ids = encode(tiny_generator, PROMPTS[:2])
    cfg = GenerationConfig(strategy="sample", max_new_tokens=20, stop=("e",))
    results = tiny_generator.complete(ids, cfg, seeds=[1, 2], on_text=lambda row, p: pieces[row].append(p))
    for row, result in enumerate(results):
        assert "".join(pieces[row]) == result.text


def test_min_new_tokens_holds_off_end_of_text(tiny_generator):
    ids = encode(tiny_generator, PROMPTS[:1])
    cfg = GenerationConfig(strategy="greedy", max_new_tokens=12, min_new_tokens=12,
                           logit_bias=(("#2", 100.0),))  # end-of-turn would win every step
    result = tiny_generator.complete(ids, cfg)[0]
    assert len(result.tokens) == 12 and result.finish_reason == "length"
    eos_first = tiny_generator.complete(ids, replace(cfg, min_new_tokens=0))[0]
    assert eos_first.finish_reason == "eos" and len(eos_first.tokens) == 1


def test_ending_tokens_are_end_of_text_and_the_tokens_holding_a_stop(tiny_generator):
    from metagen.bans import ending_tokens

    tok = tiny_generator.tokenizer
    assert ending_tokens(tok, ()) == sorted(tok.eos_ids)
    ending = ending_tokens(tok, ("\n", ""))
    holding = {i for i in range(tok.vocab_size) if "\n" in tok.token_text(i)} - tok.special_ids
    assert holding and set(ending) == set(tok.eos_ids) | holding


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
def test_min_new_tokens_holds_off_a_stop_string_too(tiny_generator, strategy):
    # a dialogue line whose first token is a line break ends empty: min_new_tokens holds it off
    tok = tiny_generator.tokenizer
    newline = next(i for i in range(tok.vocab_size) if "\n" in tok.token_text(i) and i not in tok.special_ids)
    ids = encode(tiny_generator, PROMPTS[:1])
    cfg = GenerationConfig(strategy=strategy, num_beams=2 if strategy == "beam" else 1, max_new_tokens=6,
                           stop=("\n",), logit_bias=((f"#{newline}", 100.0),))  # the line break would win
    empty = tiny_generator.complete(ids, cfg)[0]
    assert empty.finish_reason == "stop" and empty.text == ""
    held = tiny_generator.complete(ids, replace(cfg, min_new_tokens=1))[0]
    assert held.tokens[0] != newline and "\n" not in tok.decode(held.tokens[:1])
    assert held.text != ""


def test_min_new_tokens_with_min_p_when_end_of_text_dominates(tiny_generator):
    # min-p after a held-off end-of-text used to keep end-of-text alone and then nothing: a crash
    ids = encode(tiny_generator, PROMPTS[:1])
    cfg = GenerationConfig(strategy="sample", max_new_tokens=8, min_new_tokens=5, min_p=0.1,
                           logit_bias=(("#2", 100.0),))
    for seed in range(4):
        result = tiny_generator.complete(ids, cfg, seeds=[seed])[0]
        assert len(result.tokens) >= 5 and result.finish_reason in ("eos", "length")


def test_no_repeat_ngram_never_repeats_in_outputs(tiny_generator):
    ids = encode(tiny_generator, PROMPTS[:1])
    for strategy in ("greedy", "beam"):
        cfg = GenerationConfig(strategy=strategy, num_beams=2 if strategy == "beam" else 1, max_new_tokens=40,
                               no_repeat_ngram_size=2, repetition_penalty=1.0)
        tokens = tiny_generator.complete(ids, cfg)[0].tokens
        grams = [tuple(tokens[i:i + 2]) for i in range(len(tokens) - 1)]
        assert len(grams) == len(set(grams))


def _grams(tokens: list[int], n: int) -> set[tuple[int, ...]]:
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


def _copies(prompt: list[int], tokens: list[int], n: int) -> int:
    """How many written tokens complete an n-gram that the prompt or the earlier text already holds."""
    whole = prompt + tokens
    return sum(tuple(whole[end - n + 1:end + 1]) in _grams(whole[:end], n) for end in range(len(prompt), len(whole)))


def test_no_copy_ngram_never_copies_the_prompt_or_repeats(tiny_generator):
    ids = encode(tiny_generator, PROMPTS[:1])
    for strategy in ("greedy", "beam"):
        cfg = GenerationConfig(strategy=strategy, num_beams=2 if strategy == "beam" else 1, max_new_tokens=40,
                               repetition_penalty=1.0)
        free = tiny_generator.complete(ids, cfg)[0].tokens
        assert _copies(ids[0], free, 2) > 0  # the tiny model copies when let: otherwise this test proves nothing
        guarded = tiny_generator.complete(ids, replace(cfg, no_copy_ngram_size=2))[0].tokens
        assert _copies(ids[0], guarded, 2) == 0


def test_banned_words_never_appear_across_seeds(tiny_generator):
    ids = encode(tiny_generator, PROMPTS[:1])
    cfg = GenerationConfig(strategy="sample", max_new_tokens=30, temperature=1.5, top_k=0, top_p=1.0)
    free = " ".join(tiny_generator.complete(ids, cfg, seeds=[s])[0].text for s in range(8))
    merged = set("".join(TINY_MERGES).replace("Ġ", ""))
    letters = [c for c in free if c.isascii() and c.isalpha() and c.lower() not in merged and c.upper() not in merged]
    common = max(set(letters), key=letters.count)  # the tiny model's favourite single-token letter
    assert free.count(common) >= 2
    banned = replace(cfg, banned=(common,))
    for seed in range(8):
        text = tiny_generator.complete(ids, banned, seeds=[seed])[0].text
        assert common.lower() not in text.lower()


def test_logprob_is_the_raw_log_probability(tiny_generator):
    ids = encode(tiny_generator, PROMPTS[:1])
    cfg = GenerationConfig(strategy="sample", max_new_tokens=6, temperature=0.7, repetition_penalty=1.3)
    result = tiny_generator.complete(ids, cfg, seeds=[3])[0]
    model = tiny_generator.model
    full = torch.tensor([ids[0] + result.tokens])
    logits = model(full, model.new_cache(1, full.shape[1]))[0]
    expected = torch.log_softmax(logits[len(ids[0]) - 1:-1], -1).gather(1, torch.tensor(result.tokens)[:, None]).sum()
    assert result.logprob == pytest.approx(expected.item(), abs=1e-4)


def test_prompt_too_long_for_context_is_a_config_error(tiny_generator):
    from metagen.errors import ConfigError

    ids = [[5] * 250]
    with pytest.raises(ConfigError, match="--max-tokens 20 does not fit"):
        tiny_generator.complete(ids, GenerationConfig(max_new_tokens=20))


def test_prefix_reuse_gives_the_same_tokens_and_prefills_less(tiny_generator, monkeypatch):
    from metagen.search import PrefixReuse

    cfg = GenerationConfig(strategy="sample", max_new_tokens=12, top_k=0, top_p=1.0)
    base = tiny_generator.encode_prompt("we went down to the water and the sea was", chat=False)
    first = tiny_generator.complete([base], cfg, seeds=[1])[0]
    follow = base + first.tokens + tiny_generator.encode_prompt(" then", chat=False)
    fresh = tiny_generator.complete([follow], cfg, seeds=[2])[0]

    reuse = PrefixReuse(min_shared=4)
    tiny_generator.complete([base], cfg, seeds=[1], reuse=reuse)
    widths = count_passes(tiny_generator.model, monkeypatch)
    reused = tiny_generator.complete([follow], cfg, seeds=[2], reuse=reuse)[0]
    assert reused.tokens == fresh.tokens
    assert widths[0][1] < len(follow) - len(first.tokens)  # only the new tail was prefilled


def test_a_kept_prompt_is_not_run_again_and_writes_the_same(tiny_generator, monkeypatch):
    from metagen.search import PromptMemo

    cfg = GenerationConfig(strategy="sample", max_new_tokens=10, top_k=20)
    prompt = encode(tiny_generator, PROMPTS[:1])[0]
    fresh = [tiny_generator.complete([prompt] * 3, cfg, seeds=[s, s + 1, s + 2]) for s in (1, 7)]
    memo = PromptMemo()
    monkeypatch.setattr(tiny_generator, "prompt_memo", memo)
    first = tiny_generator.complete([prompt] * 3, cfg, seeds=[1, 2, 3])
    widths = count_passes(tiny_generator.model, monkeypatch)
    again = tiny_generator.complete([prompt] * 3, cfg, seeds=[7, 8, 9])  # the same prompt, other seeds
    assert all(width[1] == 1 for width in widths)  # one-token steps only: the prompt's pass was kept
    assert [c.tokens for c in first] == [c.tokens for c in fresh[0]]
    assert [(c.tokens, c.logprob) for c in again] == [(c.tokens, c.logprob) for c in fresh[1]]
    alone = tiny_generator.complete([prompt], cfg, seeds=[7])[0]  # one row, a longer budget: the same slots
    assert alone.tokens == fresh[1][0].tokens and len(widths) > 0 and all(w[1] == 1 for w in widths)


def test_a_prompt_memo_keys_the_thread_count_and_keeps_the_most_recent_within_its_bytes(tiny_generator):
    from metagen.search import PromptMemo

    model = tiny_generator.model
    cache = model.new_cache(1, 8)
    logits = model(torch.tensor([[5, 6, 7]]), cache, last_only=True)[:, -1]
    memo = PromptMemo()
    memo.remember(((5, 6, 7), 2), cache, logits)
    assert memo.recall(((5, 6, 7), 1), model.new_cache(1, 8)) is None  # another thread count sums otherwise
    into = model.new_cache(1, 12)
    assert torch.equal(memo.recall(((5, 6, 7), 2), into), logits) and into.length == 3
    assert torch.equal(into.k[:, :, :, :3], cache.k[:, :, :, :3])
    small = PromptMemo(most_bytes=memo.kept_bytes())
    small.remember(("a",), cache, logits)
    small.remember(("b",), cache, logits)  # the older goes
    assert small.recall(("a",), model.new_cache(1, 8)) is None and small.recall(("b",), model.new_cache(1, 8)) is not None
    tiny = PromptMemo(most_bytes=memo.kept_bytes() - 1)
    tiny.remember(("c",), cache, logits)  # bigger than the whole memo: not kept
    assert tiny.kept_bytes() == 0 and tiny.recall(("c",), model.new_cache(1, 8)) is None


def count_passes(model, monkeypatch) -> list[tuple[int, int]]:
    """The (rows, positions) of every model pass from now on."""
    widths = []
    original = type(model).forward

    def counting(self, tokens, cache, pad=None, last_only=False):
        widths.append(tuple(tokens.shape))
        return original(self, tokens, cache, pad, last_only)

    monkeypatch.setattr(type(model), "forward", counting)
    return widths


def test_candidates_of_one_prompt_are_prefilled_once_and_match_decoding_alone(tiny_generator, monkeypatch):
    cfg = GenerationConfig(strategy="sample", max_new_tokens=10, top_k=20)
    prompt = encode(tiny_generator, PROMPTS[:1])[0]
    alone = [decode_loop(tiny_generator.model, tiny_generator.tokenizer, [prompt], cfg, seeded(1, s))[0]
             for s in range(3)]
    widths = count_passes(tiny_generator.model, monkeypatch)
    together = decode_loop(tiny_generator.model, tiny_generator.tokenizer, [prompt] * 3, cfg,
                             [torch.Generator().manual_seed(s) for s in range(3)])
    assert widths[0] == (1, len(prompt))  # one row prefilled for three candidates
    assert [r.sequences[0].tokens for r in together] == [r.sequences[0].tokens for r in alone]


def test_forced_starts_open_each_row_and_leave_its_logprob_and_shared_prompt_alone(tiny_generator, monkeypatch):
    cfg = GenerationConfig(strategy="sample", max_new_tokens=8, top_k=20)
    prompt = encode(tiny_generator, PROMPTS[:1])[0]
    forced = [encode(tiny_generator, ["dog"])[0], [], encode(tiny_generator, ["the sea"])[0]]
    widths = count_passes(tiny_generator.model, monkeypatch)
    model = tiny_generator.model
    rows = decode_loop(model, tiny_generator.tokenizer, [prompt] * 3, cfg, seeded(3), forced=forced)
    assert widths[0] == (1, len(prompt))  # still one prompt, prefilled once
    for row, start in zip(rows, forced):
        assert row.sequences[0].tokens[:len(start)] == start
    free = decode_loop(model, tiny_generator.tokenizer, [prompt], cfg, seeded(1, 1))[0]
    assert rows[1].sequences[0].tokens == free.sequences[0].tokens  # a row with nothing forced is as alone
    # the forced tokens' log-probabilities are left out: a row forced to the model's own greedy choice scores less
    greedy_cfg = GenerationConfig(strategy="greedy", max_new_tokens=4)
    chosen = decode_loop(model, tiny_generator.tokenizer, [prompt], greedy_cfg)[0].sequences[0]
    again = decode_loop(model, tiny_generator.tokenizer, [prompt], greedy_cfg, forced=[chosen.tokens[:2]])[0].sequences[0]
    assert again.tokens == chosen.tokens and again.logprob > chosen.logprob
    with pytest.raises(ValueError, match="one forced start per prompt"):
        decode_loop(model, tiny_generator.tokenizer, [prompt] * 2, cfg, seeded(2), forced=[[]])


@pytest.mark.parametrize("case", ["padded", "shared", "xtc", "contrast"])
def test_rows_that_finish_leave_the_batch_and_the_rest_write_as_alone(tiny_generator, monkeypatch, case):
    model, tokenizer = tiny_generator.model, tiny_generator.tokenizer
    eos = sorted(tokenizer.eos_ids)[0]
    prompts = encode(tiny_generator, PROMPTS[:3]) if case == "padded" else encode(tiny_generator, PROMPTS[:1]) * 3
    extra = {"xtc": {"xtc_probability": 0.5, "xtc_threshold": 0.05}, "contrast": {"context_contrast": 2.0}}
    cfg = GenerationConfig(strategy="sample", max_new_tokens=8, top_k=20, **extra.get(case, {}))
    plain = PlainPrompts(encode(tiny_generator, ["the sea"]) * 3) if case == "contrast" else None
    widths = count_passes(model, monkeypatch)
    rows = decode_loop(model, tokenizer, prompts, cfg, seeded(3), plain=plain, forced=[[eos], [], []])
    first = rows[0].sequences[0]
    assert first.tokens == [eos] and first.finish_reason == "eos"  # row 0 ends on its first token
    steps = widths[2:] if plain else widths[1:]  # after the prefills
    assert steps and all(rows_run == (4 if plain else 2) for rows_run, _ in steps)  # row 0 (and its twin) left
    for row in (1, 2):
        alone_plain = PlainPrompts(plain.ids[row:row + 1]) if plain else None
        alone = decode_loop(model, tokenizer, [prompts[row]], cfg, seeded(1, row), plain=alone_plain)[0]
        assert rows[row].sequences[0].tokens == alone.sequences[0].tokens


def test_text_tracker_ends_after_its_sentences():
    tracker = TextTracker(CharTokenizer(), (), sentences=2)
    streamed = ""
    for ch in "One. Two. Three. Four.":
        streamed += tracker.push(ord(ch))
        if tracker.stopped:
            break
    assert tracker.stopped and tracker.text == streamed == "One. Two."  # stopped at the space after "Two."


def test_a_row_ends_after_its_sentences_as_the_cut_would_leave_it(tiny_generator):
    from metagen.text import sentence_cut

    tokenizer = tiny_generator.tokenizer
    dot = tokenizer.encode(".")[0]  # the tiny model writes bytes: favour full stops so that sentences end
    cfg = GenerationConfig(strategy="sample", temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=60,
                           repetition_penalty=1.0, logit_bias=((f"#{dot}", 4.0),))
    ids = encode(tiny_generator, PROMPTS[:2])

    def run(cfg, seed):
        return [r.sequences[0] for r in decode_loop(tiny_generator.model, tokenizer, ids, cfg, seeded(2, seed))]

    # a seed whose row 0 holds two whole sentences and row 1 does not
    seed = next(s for s in range(50) if [sentence_cut(f.text, 2)[1] for f in run(cfg, s)] == [True, False])
    free = run(cfg, seed)
    cut = sentence_cut(free[0].text, 2)[0]
    ended = run(replace(cfg, max_sentences=2), seed)
    assert ended[0].text == free[0].text[:cut] and ended[0].finish_reason == "stop"
    assert len(ended[0].tokens) < len(free[0].tokens)
    assert ended[1].text == free[1].text and ended[1].finish_reason == free[1].finish_reason  # the other row as before


# ----------------------------------------------------------------------------- context contrast


def test_contrast_moves_plausible_tokens_by_the_facts_difference():
    from metagen.search import ContextContrast

    contrast = ContextContrast.__new__(ContextContrast)  # adjust alone: no model needed
    contrast.strength, contrast.starts = 0.5, torch.tensor([0])
    with_facts = torch.log(torch.tensor([[0.5, 0.3, 0.19, 0.01]]))
    contrast.logits = torch.log(torch.tensor([[0.7, 0.1, 0.1, 0.1]]))  # what the model says without the facts
    adjusted = contrast.adjust(with_facts)
    expected = with_facts + 0.5 * (with_facts - contrast.logits)
    assert torch.allclose(adjusted[0, :3], expected[0, :3])
    # 0.01 is under a tenth of the likeliest (0.05): left as it was, though the facts make it 10x less likely
    assert adjusted[0, 3] == with_facts[0, 3]
    assert adjusted[0].argmax() == 1  # the token the facts support overtakes the one any place would get


def test_contrast_with_the_same_prompt_changes_nothing_and_off_ignores_plain(tiny_generator):
    ids = encode(tiny_generator, PROMPTS[:1])
    cfg = GenerationConfig(strategy="sample", max_new_tokens=16, top_k=0, top_p=1.0, temperature=1.0)
    alone = tiny_generator.complete(ids, cfg, seeds=[3])[0].tokens
    same = tiny_generator.complete(ids, replace(cfg, context_contrast=1.0), seeds=[3], plain=PlainPrompts(ids))[0].tokens
    off = tiny_generator.complete(ids, cfg, seeds=[3], plain=PlainPrompts(encode(tiny_generator, ["a"])))[0].tokens
    assert same == alone and off == alone


def test_contrast_follows_the_plain_prompt_and_the_seed(tiny_generator):
    ids = encode(tiny_generator, PROMPTS[3:4]) * 2
    plain = PlainPrompts(encode(tiny_generator, ["the"]) * 2)
    cfg = GenerationConfig(strategy="greedy", max_new_tokens=16)
    base = [c.tokens for c in tiny_generator.complete(ids, cfg)]
    strong = replace(cfg, context_contrast=4.0)
    first = [c.tokens for c in tiny_generator.complete(ids, strong, plain=plain)]
    again = [c.tokens for c in tiny_generator.complete(ids, strong, plain=plain)]
    assert first == again and first[0] == first[1]
    assert first != base  # the tiny model's logits differ by prompt, so a strong contrast moves its choices
    with pytest.raises(ValueError, match="one plain prompt"):
        tiny_generator.complete(ids, strong, plain=PlainPrompts(plain.ids[:1]))
    # a row whose start is past the text's length is written as without the contrast
    late = [c.tokens for c in tiny_generator.complete(ids, strong, plain=PlainPrompts(plain.ids, (0, 99)))]
    assert late == [first[0], base[1]]


def test_contrast_rows_join_the_candidates_pass_and_write_the_same(tiny_generator, monkeypatch):
    from metagen import search

    ids = encode(tiny_generator, PROMPTS[3:4]) * 3
    plain = PlainPrompts(encode(tiny_generator, ["the"]) * 3)
    cfg = GenerationConfig(strategy="sample", max_new_tokens=12, top_k=0, top_p=1.0, temperature=1.0,
                           context_contrast=2.0)
    joined = []
    original = search.ContextContrast.joined_with
    monkeypatch.setattr(search.ContextContrast, "joined_with",
                        lambda self, cache: joined.append(original(self, cache)) or joined[-1])
    together = [c.tokens for c in tiny_generator.complete(ids, cfg, seeds=[1, 2, 3], plain=plain)]
    assert joined and joined[-1] is not None  # three candidates of one prompt: one pass of six rows
    monkeypatch.setattr(search.ContextContrast, "joined_with", lambda self, cache: None)
    apart = [c.tokens for c in tiny_generator.complete(ids, cfg, seeds=[1, 2, 3], plain=plain)]
    assert together == apart


def test_plain_prompts_keep_their_cache_for_the_next_call(tiny_generator):
    from metagen.search import PrefixReuse

    ids = encode(tiny_generator, PROMPTS[3:4]) * 2
    plain_ids = encode(tiny_generator, ["the cat sat on the mat and the dog sat on the rug by the door"])[0]
    cfg = GenerationConfig(strategy="greedy", max_new_tokens=6, context_contrast=1.0)
    reuse = PrefixReuse(min_shared=4)
    first = [c.tokens for c in tiny_generator.complete(ids, cfg, plain=PlainPrompts([plain_ids] * 2, reuse=reuse))]
    assert reuse.ids == plain_ids  # of several rows, the prompt they share is what a next call can reuse
    longer = plain_ids + encode(tiny_generator, [" and then"])[0]
    assert reuse.shared_with(longer) == len(plain_ids)
    fresh = [c.tokens for c in tiny_generator.complete(ids, cfg, plain=PlainPrompts([plain_ids] * 2))]
    assert first == fresh
