"""Shuffle candidate pools into reader sheets: each pool's distinct texts under letters, no scores.

usage: python build_sheets.py OUT_DIR READERS OVERLAP POOLS.jsonl...
Writes OUT_DIR/sheet-R.md per reader and OUT_DIR/key.json (pool id -> letter -> candidate indices).
OVERLAP pools per reader are also given to the next reader (for agreement between readers).
"""
import json
import random
import re
import sys
from pathlib import Path

out_dir, readers, overlap = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
pools = [json.loads(line) for path in sys.argv[4:] for line in open(path, encoding="utf-8")]
rng = random.Random(26)
out_dir.mkdir(parents=True, exist_ok=True)
TURN = re.compile(r"<\|im_start\|>(system|user|assistant)\n(.*?)(?:<\|im_end\|>|$)", re.S)


ROLE_LINE = re.compile(r"(?m)^(system|user|assistant)\n")


def messages(prompt: str) -> list[tuple[str, str]]:
    if "<|im_start|>" not in prompt:  # decoded without its special tokens: a role's name alone on a line
        parts = ROLE_LINE.split(prompt)
        return [(parts[i], parts[i + 1].strip()) for i in range(1, len(parts) - 1, 2) if parts[i + 1].strip()]
    return [(m.group(1), m.group(2).strip()) for m in TURN.finditer(prompt) if m.group(2).strip()]


def render_line(pid: str, pool: dict, letters: dict) -> str:
    """A dialogue line's pool: the dialogue's brief, the lines so far, whose line is next."""
    brief = "\n\n".join(m["content"] for m in pool["messages"])
    lines = [f"## Pool {pid} (dialogue line)", "", "The brief:", "", brief, ""]
    if pool["transcript"]:
        lines += ["The dialogue so far:", "", *[f"{who}: {said}" for who, said in pool["transcript"]], ""]
    lines += [f"Next line, spoken by {pool['speaker']}. Candidates:", ""]
    for letter, text in letters.items():
        lines += [f"{letter}. {text or '(empty)'}", ""]
    lines += ["BEST: ", "WORST: ", "", ""]
    return "\n".join(lines)


def render(pid: str, pool: dict, letters: dict) -> str:
    if pool["kind"] == "dialogue":
        return render_line(pid, pool, letters)
    turns = messages(pool["prompt"])
    system = next((t for r, t in turns if r == "system"), "")
    users = [t for r, t in turns if r == "user"]
    written = [t for r, t in turns if r == "assistant"]
    lines = [f"## Pool {pid} ({'story paragraph' if pool['kind'] == 'story' else 'scene'})", "",
             f"Style asked for: {system}", ""]
    if pool["kind"] == "story":
        lines += ["The brief:", "", users[0].rsplit("\n\n", 1)[0], ""]
        if written:
            lines += ["The story so far:", "", *[p + "\n" for p in written]]
        lines += [f"This paragraph's task: {users[-1].rsplit(chr(10) * 2, 1)[-1]}", ""]
    else:
        lines += ["The brief:", "", users[-1], ""]
    lines += ["Candidates:", ""]
    for letter, text in letters.items():
        lines += [f"{letter}. {text or '(empty)'}", ""]
    lines += ["BEST: ", "WORST: ", "", ""]
    return "\n".join(lines)


key, rendered = {}, {}
for n, pool in enumerate(pools):
    pid = f"P{n:03d}"
    texts = {}
    for i, c in enumerate(pool["candidates"]):
        texts.setdefault(c["text"].strip(), []).append(i)
    if len(texts) < 2:
        continue  # nothing to choose
    order = list(texts)
    rng.shuffle(order)
    letters = {chr(65 + j): t for j, t in enumerate(order)}
    key[pid] = {"pool": n, "letters": {chr(65 + j): texts[t] for j, t in enumerate(order)}}
    rendered[pid] = render(pid, pool, letters)

ids = list(rendered)
rng.shuffle(ids)
share = [ids[r::readers] for r in range(readers)]
for r in range(readers):
    extra = share[(r + 1) % readers][:overlap]
    mine = share[r] + extra
    rng.shuffle(mine)
    text = "\n".join(rendered[p] for p in mine)
    (out_dir / f"sheet-{r + 1}.md").write_text(text, encoding="utf-8")
json.dump(key, open(out_dir / "key.json", "w"), indent=1)
print(len(ids), "pools;", [len(s) for s in share], "each, plus", overlap, "shared")
