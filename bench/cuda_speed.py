"""Decode speed on CUDA for a model of SmolLM2-135M's shape (random weights), by dtype and batch."""

from __future__ import annotations

import time

import torch

from metagen.config import GenerationConfig
from metagen.generator import Generator, ModelInfo
from metagen.gguf import ModelArgs
from metagen.model import Transformer, random_weights
from tests.conftest import tiny_tokenizer_data
from metagen.tokenizer import Tokenizer

SMOLLM2 = ModelArgs(dim=576, n_layers=30, n_heads=9, n_kv_heads=3, vocab_size=49152, ffn_dim=1536,
                    rope_theta=100000.0, norm_eps=1e-5, max_seq_len=8192, tied_embeddings=True)


def main() -> None:
    weights = random_weights(SMOLLM2, seed=0)
    data = tiny_tokenizer_data()
    tokenizer = Tokenizer.from_data(data)
    prompt = list(range(300, 343))  # 43 prompt tokens
    print(f"{'dtype':9} {'case':14} {'tok/s':>9}")
    for dtype in ("bfloat16", "float32"):
        model = Transformer.from_weights(SMOLLM2, weights, dtype).to_device("cuda")
        gen = Generator(model, tokenizer, ModelInfo("shape-of-smollm2", "-", "-", dtype, "cuda", 8192))
        for case, batch, cfg in (
            ("greedy b1", 1, GenerationConfig(strategy="greedy", max_new_tokens=128, min_new_tokens=128)),
            ("sample b1", 1, GenerationConfig(strategy="sample", max_new_tokens=128, min_new_tokens=128)),
            ("beam-4 b1", 1, GenerationConfig(strategy="beam", num_beams=4, max_new_tokens=128, min_new_tokens=128)),
            ("sample b16", 16, GenerationConfig(strategy="sample", max_new_tokens=128, min_new_tokens=128)),
        ):
            gen.complete([prompt] * batch, cfg, seeds=list(range(batch)))  # warm-up
            runs = []
            for _ in range(3):
                torch.cuda.synchronize()
                start = time.perf_counter()
                out = gen.complete([prompt] * batch, cfg, seeds=list(range(batch)))
                torch.cuda.synchronize()
                runs.append(sum(len(c.tokens) for c in out) / (time.perf_counter() - start))
            print(f"{dtype:9} {case:14} {sorted(runs)[1]:9.1f}")


if __name__ == "__main__":
    main()
