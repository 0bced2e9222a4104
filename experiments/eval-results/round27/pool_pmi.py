"""Narration candidates (round26/collect_pools.py pools): how much their prompt makes them likelier.

For each candidate of a story beat or scene: the sum of its tokens' log-probabilities after the pool's
whole prompt (full), after the system message and the last instruction alone (last: no world facts
of earlier turns, no story so far; the same as full for a single-turn prompt), and after the system
message and a bare "Write a paragraph." (bare). Writes one JSON line per pool for pool_pmi_report.py.

usage: PYTHONPATH=. python pool_pmi.py OUT.jsonl POOLS.jsonl...
"""
import json
import re
import sys

import torch

from metagen.dialogue import _common_prefix
from metagen.generator import load_model

torch.set_num_threads(2)
generator = load_model()
tok = generator.tokenizer
ROLE = re.compile(r"(?m)^(system|user|assistant)\n")


def messages_of(prompt: str) -> list[dict]:
    """The chat a pool's prompt was rendered from ("system\\n...\\nuser\\n...\\nassistant\\n")."""
    if "<|im_start|>" in prompt:  # some pools kept the template's own marks
        prompt = prompt.replace("<|im_end|>\n", "\n").replace("<|im_start|>", "")
    parts = ROLE.split(prompt)[1:]
    msgs = [{"role": r, "content": c.rstrip("\n")} for r, c in zip(parts[::2], parts[1::2])]
    assert msgs[-1]["role"] == "assistant" and not msgs[-1]["content"], msgs[-1]
    return msgs[:-1]


def sums(messages, texts):
    ctx = tok.encode_chat(messages)
    rows = [tok.encode_chat(messages, suffix=t) for t in texts]
    shared = _common_prefix([ctx, *rows])
    with torch.inference_mode():
        return generator.score_continuations(rows, shared), [len(r) - shared for r in rows]


out = open(sys.argv[1], "w", encoding="utf-8")
for path in sys.argv[2:]:
    for n, raw in enumerate(open(path, encoding="utf-8")):
        pool = json.loads(raw)
        msgs = messages_of(pool["prompt"])
        texts = [c["text"].strip() or "…" for c in pool["candidates"]]
        full, ntok = sums(msgs, texts)
        last = sums([msgs[0], msgs[-1]], texts)[0] if len(msgs) > 2 else full
        bare = sums([msgs[0], {"role": "user", "content": "Write a paragraph."}], texts)[0]
        out.write(json.dumps({"file": path, "pool": n, "full": full, "last": last, "bare": bare, "tokens": ntok}) + "\n")
        out.flush()
        print(path, n, file=sys.stderr)
