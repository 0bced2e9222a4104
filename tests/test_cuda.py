"""The CUDA path: the same model and decoding on a GPU agree with the CPU.

Skipped where no CUDA device exists; run on a GPU machine with `pytest tests/test_cuda.py`.
"""

from __future__ import annotations

import pytest
import torch

from metagen.config import GenerationConfig
from metagen.generator import Generator, ModelInfo
from metagen.model import Transformer, random_weights
from metagen.tokenizer import Tokenizer
from tests.conftest import tiny_args, tiny_tokenizer_data

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def generator_on(device: str, weight_format: str) -> Generator:
    data = tiny_tokenizer_data()
    args = tiny_args(len(data.tokens))
    model = Transformer.from_weights(args, random_weights(args, seed=3), weight_format).to_device(device)
    info = ModelInfo("tiny", "-", "-", weight_format, device, args.max_seq_len)
    return Generator(model, Tokenizer.from_data(data), info)


def test_cuda_logits_match_cpu_in_float32():
    cpu, gpu = generator_on("cpu", "float32"), generator_on("cuda", "float32")
    tokens = torch.randint(3, 200, (2, 20), generator=torch.Generator().manual_seed(0))
    a = cpu.model(tokens, cpu.model.new_cache(2, 20))
    b = gpu.model(tokens.cuda(), gpu.model.new_cache(2, 20)).cpu()
    assert (a - b).abs().max().item() < 1e-3


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
def test_cuda_decoding_matches_cpu(strategy):
    cpu, gpu = generator_on("cpu", "float32"), generator_on("cuda", "float32")
    cfg = GenerationConfig(strategy=strategy, num_beams=3 if strategy == "beam" else 1, max_new_tokens=24,
                           repetition_penalty=1.0)
    prompts = ["the cat", "we went down to the water"]
    assert [c.tokens for c in cpu.generate(prompts, cfg, chat=False)] == \
           [c.tokens for c in gpu.generate(prompts, cfg, chat=False)]


def test_cuda_sampling_is_reproducible_and_bfloat16_runs():
    gpu = generator_on("cuda", "bfloat16")
    cfg = GenerationConfig(strategy="sample", max_new_tokens=24, seed=11)
    a = gpu.generate(["the cat", "a"], cfg, chat=False)
    b = gpu.generate(["the cat", "a"], cfg, chat=False)
    assert [c.tokens for c in a] == [c.tokens for c in b]
    assert all(len(c.tokens) > 0 for c in a)


def test_int8_runs_on_cuda():
    gpu = generator_on("cuda", "int8")
    out = gpu.generate(["the cat"], GenerationConfig(strategy="greedy", max_new_tokens=8), chat=False)[0]
    assert len(out.tokens) == 8 or out.finish_reason == "eos"


def test_cuda_rows_that_finish_leave_the_batch_as_on_cpu():
    from metagen.search import PlainPrompts, decode_loop

    cfg = GenerationConfig(strategy="greedy", max_new_tokens=16, repetition_penalty=1.0, context_contrast=1.0)

    def rows_written(device: str) -> list[list[int]]:
        gen = generator_on(device, "float32")
        prompt = gen.encode_prompt("we went down to the water", chat=False)
        plain = PlainPrompts([gen.encode_prompt("the", chat=False)] * 3)
        eos = sorted(gen.tokenizer.eos_ids)[0]
        # rows 0 and 2 end on their first token: row 1 (and its fact-free twin) decodes on alone
        results = decode_loop(gen.model, gen.tokenizer, [prompt] * 3, cfg, plain=plain, forced=[[eos], [], [eos]])
        return [r.sequences[0].tokens for r in results]

    assert rows_written("cpu") == rows_written("cuda")
