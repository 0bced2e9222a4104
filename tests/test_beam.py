"""Beam search on the tiny model: batches, n-best order, scores against greedy, streaming."""

from __future__ import annotations

from metagen.beam import beam_search
from metagen.config import GenerationConfig
from metagen.search import decode_loop
from tests.conftest import PROMPTS, encode


def test_beam_batch_rows_equal_decoding_alone(tiny_generator):
    cfg = GenerationConfig(strategy="beam", num_beams=3, max_new_tokens=12, repetition_penalty=1.0,
                           num_return_sequences=2)
    ids = encode(tiny_generator, PROMPTS[:3])
    batch = beam_search(tiny_generator.model, tiny_generator.tokenizer, ids, cfg)
    for row, prompt in enumerate(ids):
        alone = beam_search(tiny_generator.model, tiny_generator.tokenizer, [prompt], cfg)[0]
        assert [s.tokens for s in batch[row].sequences] == [s.tokens for s in alone.sequences]
        assert len(alone.sequences) == 2
        assert alone.sequences[0].score >= alone.sequences[1].score


def test_beam_search_beats_or_equals_greedy_in_score(tiny_generator):
    ids = encode(tiny_generator, PROMPTS[:1])
    greedy = decode_loop(tiny_generator.model, tiny_generator.tokenizer, ids,
                           GenerationConfig(strategy="greedy", max_new_tokens=10, repetition_penalty=1.0))[0]
    beam = beam_search(tiny_generator.model, tiny_generator.tokenizer, ids,
                       GenerationConfig(strategy="beam", num_beams=4, max_new_tokens=10, repetition_penalty=1.0,
                                        length_penalty=0.0))[0]
    g = greedy.sequences[0]
    if g.finish_reason == "length" and beam.sequences[0].finish_reason == "length":
        assert beam.sequences[0].logprob >= g.logprob - 1e-4


def test_beam_streaming_sends_only_final_text(tiny_generator):
    pieces: list[str] = []
    ids = encode(tiny_generator, PROMPTS[:1])
    cfg = GenerationConfig(strategy="beam", num_beams=4, max_new_tokens=16, repetition_penalty=1.0)
    result = tiny_generator.complete(ids, cfg, on_text=lambda row, p: pieces.append(p))[0]
    assert "".join(pieces) == result.text
