"""Pilot: the chat's writer-transcript prompt against a role-play prompt (player's line as the user turn)."""
import sys, json
from dataclasses import replace
from metagen import load_world, GenerationConfig
from metagen.chat import ChatSession
import metagen
from metagen.pipeline import effective_config

SPECS = [("worlds/ashenmere.yaml", "brannoc", "brannoc"), ("worlds/ashenmere.yaml", "maelle", "maelle"),
         ("worlds/harbour/world.yaml", "bea", "bea"), ("worlds/harbour/world.yaml", "jonas", "jonas"),
         ("worlds/nexus-hub.yaml", "pip", "pip"), ("worlds/nexus-hub.yaml", "ottoline-graves", "ottoline")]
D = "/work/main/experiments/eval-results/round7-adapter-with-chats/chat-scripts/"
g = metagen.load_model()
seeds = [int(s) for s in sys.argv[1].split(",")]
temp = float(sys.argv[2]) if len(sys.argv) > 2 else 0.7

def roleplay(world, c, lore_lines):
    bits = [f"You are {c.name}" + (f", {c.role}" if c.role else "") + f", in {world.name}."]
    if c.description: bits.append(c.description)
    if c.voice: bits.append(f"You speak {c.voice.rstrip('.')}.")
    if c.goals: bits.append("You want to " + c.goals[0].rstrip('.') + ".")
    bits += lore_lines
    bits.append("Stay in character. Answer the visitor's question directly, in one or two short sentences spoken aloud.")
    return " ".join(bits)

for path, cid, script in SPECS:
    w = load_world(path)
    c = [x for x in w.characters if x.id == cid][0]
    lines = [l.strip() for l in open(D + script + ".txt") if l.strip()]
    cfg = replace(effective_config(w, "dialogue", None, None), temperature=temp, max_new_tokens=60, candidates=1, stop=("\n",))
    for seed in seeds:
        s = ChatSession(g, w, c, cfg, seed=seed)
        lore = [" ".join(e.text.split()) for e in w.lore][:3]
        msgs = [{"role": "system", "content": roleplay(w, c, lore)}]
        for i, line in enumerate(lines):
            p = s.prompt(line)
            old = g.complete([p.ids], cfg, seeds=[seed * 10 + i])[0].text.strip()
            msgs.append({"role": "user", "content": line})
            ids = g.tokenizer.encode_chat(msgs, suffix="")
            new = g.complete([ids], cfg, seeds=[seed * 10 + i])[0].text.strip()
            msgs.append({"role": "assistant", "content": new})
            print(json.dumps({"who": cid, "seed": seed, "line": line, "old": old, "new": new}, ensure_ascii=False), flush=True)
