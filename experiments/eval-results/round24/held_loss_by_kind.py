"""Held-aside loss per kind of unit (beat, scene, line, answer) of the default model with each adapter given
(or none), bfloat16 autocast: does a retrained adapter's change show in one kind's loss?

usage: held_loss_by_kind.py EVAL.jsonl ADAPTER...   (ADAPTER: default | none | PATH)
"""
import sys

import torch

from metagen import tune as T
from metagen.generator import load_model

torch.set_num_threads(2)
held = T.read_examples(sys.argv[1])
settings = T.TuneSettings(dtype="bfloat16")
kinds = sorted({e.kind for e in held})
for adapter in sys.argv[2:]:
    g = load_model("smollm2-135m-instruct", dtype="float32", adapter=adapter)
    losses = {}
    for kind in kinds:
        seqs, _ = T.pack(g.tokenizer, [e for e in held if e.kind == kind], settings.max_tokens)
        losses[kind] = round(T.mean_loss(g.model, seqs, settings, g.model.device), 4)
    print(adapter, losses, flush=True)
