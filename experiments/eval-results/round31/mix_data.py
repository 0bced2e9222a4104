"""The training set of round thirty-one's mixed pass: every dialogue line of corpus/train.jsonl, and the
other kinds' examples (beats, scenes, chat answers) of the worlds whose id's sha256 is even (half).

usage: python experiments/eval-results/round31/mix_data.py corpus/train.jsonl OUT.jsonl
then:  metagen tune OUT.jsonl --eval corpus/eval.jsonl --out mix.safetensors --from default --epochs 1 \
           --learning-rate 3e-4 --dtype bfloat16        # 171 steps, 3,554 s on the Xeon of round 31
       python experiments/eval-results/round11-adapter/to_bf16.py mix.safetensors mix-bf16.safetensors
"""
import hashlib
import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
kept = [r for r in rows if r["kind"] == "line" or int(hashlib.sha256(r["world"].encode()).hexdigest(), 16) % 2 == 0]
with open(sys.argv[2], "w", encoding="utf-8") as out:
    out.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in kept)
print(len(kept), {k: sum(r["kind"] == k for r in kept) for k in ("line", "beat", "scene", "answer")})
