"""Decode throughput, old tree against new, one process per measurement, alternating."""
import json, os, statistics, subprocess, sys
M = "/tmp/mghome-new/models/SmolLM2-135M-Instruct.Q4_1.gguf"
TREES = {"old": "/tmp/r32/old", "new": "/work/main"}
CODE = r'''
import sys, time
import metagen
import torch
from metagen.generator import load_model
from metagen.config import GenerationConfig
rows, tokens = int(sys.argv[2]), 64
g = load_model(sys.argv[1], dtype="int4")
ids = g.tokenizer.encode("Write a short story about a lighthouse keeper who finds a message in a bottle.")
cfg = GenerationConfig(strategy="sample", max_new_tokens=tokens, min_new_tokens=tokens, repetition_penalty=1.0, temperature=0.8, top_p=0.95, top_k=40)
g.complete([ids] * rows, cfg, seeds=list(range(rows)))
t = time.perf_counter(); out = g.complete([ids] * rows, cfg, seeds=list(range(rows))); el = time.perf_counter() - t
print(rows * tokens / el, [o.text[:30] for o in out][:1])
'''
res = {}
for rep in range(3):
    for rows in (1, 4, 8, 16):
        for name, tree in (TREES.items() if rep % 2 == 0 else reversed(list(TREES.items()))):
            env = dict(os.environ, PYTHONPATH=tree, METAGEN_HOME="/tmp/mghome-new")
            env.pop("OMP_WAIT_POLICY", None)
            out = subprocess.run([sys.executable, "-c", CODE, M, str(rows)], env=env, cwd=tree, capture_output=True, text=True)
            line = out.stdout.strip().splitlines()[-1]
            res.setdefault((name, rows), []).append(float(line.split()[0]))
            print(name, rows, line, flush=True)
print("| rows | 0.17.0 tok/s | now tok/s | ratio |")
for rows in (1, 4, 8, 16):
    a, b = statistics.median(res[("old", rows)]), statistics.median(res[("new", rows)])
    print(f"| {rows} | {a:.1f} ({min(res[('old', rows)]):.1f}-{max(res[('old', rows)]):.1f}) | {b:.1f} ({min(res[('new', rows)]):.1f}-{max(res[('new', rows)]):.1f}) | {b / a:.2f}x |")
