"""metagen with a one-shot scene prompt: before the request, one worked example from the training
corpus (a scene brief of another world and its written target, same person and tense), as an
earlier user/assistant turn; the example is picked by a hash of the world and place. Everything
else as it is. ONESHOT_KINDS=scene (default)."""
import json, os, re, sys, zlib
from pathlib import Path
from metagen import prompts as P

ROOT = Path(__file__).resolve().parents[3]
ROWS = [json.loads(line) for line in open(ROOT / "corpus" / "train.jsonl")]
SCENES = [r for r in ROWS if r["kind"] == "scene" and r["end_of_turn"] and not r.get("prefix")
          and "Who is there" not in r["messages"][-1]["content"]]
VOICE = re.compile(r"in (the \w+ person) and the (\w+) tense")
_original = P._scene_messages


def _voice(text):
    m = VOICE.search(text)
    return m.groups() if m else None


def _scene_messages(world, resolved, *, facts=True):
    messages = _original(world, resolved, facts=facts)
    voice = _voice(messages[-1]["content"])
    pool = [r for r in SCENES if _voice(r["messages"][-1]["content"]) == voice and r["world"] != world.id]
    if not pool:
        return messages
    pick = pool[zlib.crc32(f"{world.id}/{resolved.location.id}".encode()) % len(pool)]
    example = [{"role": "user", "content": pick["messages"][-1]["content"]},
               {"role": "assistant", "content": pick["completion"].strip()}]
    return messages[:1] + example + messages[1:]


P._scene_messages = _scene_messages
from metagen.cli import app
app(sys.argv[1:], standalone_mode=False)
