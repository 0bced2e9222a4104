"""Per story of an eval report: does each turn beat's paragraph carry its turn? A turn is carried when the
paragraph has at least half of the turn clause's content words (4+ letters, not the cast's names)."""
import json, sys, re
from metagen.world.load import load_world
from metagen.request import StoryRequest, resolve_request
from metagen.plan import make_plan
from metagen.text import words_of
STOP = set("that this with from have been they them their there what when which would could should wants admits says next paragraph write sentences show matter history world".split())
def content(s):
    return {w for w in words_of(s) if len(w) >= 4 and w not in STOP}
worlds = {}
for path in sys.argv[2:]:
    w = load_world(path); worlds[w.id] = w
r = json.load(open(sys.argv[1]))
tot = carried = single = paras = 0
for o in r["outputs"]:
    if o["kind"] != "story": continue
    w = worlds[o["world"]]
    req = StoryRequest(characters=tuple(o["request"]["characters"]), location=o["request"]["location"])
    res = resolve_request(w, req)
    plan = make_plan(w, res, o["seed"])
    ps = [p for p in o["text"].split("\n\n") if p.strip()]
    names = {x for c in res.characters for x in words_of(c.name)}
    for b, p in zip(plan, ps):
        paras += 1
        single += len(re.findall(r"[.!?](?:\s|$)", p.strip())) <= 1
        if b.id in ("turn", "complication"):
            m = re.search(r"Write the next paragraph\. (.*?) Write \d", b.instruction)
            turn = m.group(1)
            want = content(turn) - names
            got = want & set(words_of(p))
            tot += 1; ok = len(got) * 2 >= len(want); carried += ok
print(f"turn beats carried: {carried}/{tot}; one-sentence paragraphs: {single}/{paras}")
