"""Does a dialogue line answer the line before it? Pointwise mutual information against readers' picks.

For every logged pool of line candidates (round26/collect_lines.py) each candidate is scored by the
model three ways: after the whole prompt and transcript (full), after the same without the last
line (nolast), and after the same without any transcript (none). PMI with the last line is
full - nolast; with the transcript, full - none (sums over the line's tokens, in nats).
Writes one JSON line per pool with the scores, for line_pmi_report.py.

usage: PYTHONPATH=. python line_pmi.py OUT.jsonl POOLS.jsonl...
"""
import json
import sys

import torch

from metagen.dialogue import _common_prefix, continue_dialogue
from metagen.generator import load_model

torch.set_num_threads(2)
generator = load_model()
tok = generator.tokenizer


def scores(messages, lines, speaker, candidates):
    context = continue_dialogue(lines, speaker)
    ctx_ids = tok.encode_chat(messages, suffix=context)
    rows = [tok.encode_chat(messages, suffix=context + " " + c) for c in candidates]
    shared = _common_prefix([ctx_ids, *rows])
    with torch.inference_mode():
        sums = generator.score_continuations(rows, shared)
    return sums, [len(r) - shared for r in rows]


out = open(sys.argv[1], "w", encoding="utf-8")
for path in sys.argv[2:]:
    for n, raw in enumerate(open(path, encoding="utf-8")):
        pool = json.loads(raw)
        texts = [c["text"] or "…" for c in pool["candidates"]]
        lines = [tuple(line) for line in pool["transcript"]]
        full, ntok = scores(pool["messages"], lines, pool["speaker"], texts)
        nolast = scores(pool["messages"], lines[:-1], pool["speaker"], texts)[0] if lines else full
        none = scores(pool["messages"], [], pool["speaker"], texts)[0] if lines else full
        out.write(json.dumps({"file": path, "pool": n, "full": full, "nolast": nolast, "none": none,
                              "tokens": ntok}) + "\n")
        out.flush()
        print(path, n, file=sys.stderr)
