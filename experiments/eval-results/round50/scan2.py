import sys, re, glob, collections
sys.path.insert(0, "/work/main")
from metagen.world import load_world
from metagen.kinship import relation_vocabulary
# group: (banned words, extra cue words that also allow the group)
GROUPS = {
 "sea": ("sea seas ocean oceans seawater saltwater seaside seashore seagull seagulls seafaring".split(),
         "harbour harbor tide tides coast coastal seawall gull gulls ship ships sailor sailors port".split()),
 "fantasy": ("dragon dragons wizard wizards witch witches sorcerer sorcerers sorceress elf elves dwarf dwarves goblin goblins troll trolls unicorn unicorns fairy fairies spell spells magic magical enchanted enchantment".split(), []),
 "tech": ("phone phones telephone smartphone computer computers laptop internet email television car cars truck airplane airplanes airport wristwatch camera cameras robot robots".split(), "ai machine machines drone drones".split()),
}
worlds = {}; nstories = collections.Counter()
def world_of(path):
    txt = open(path, encoding="utf-8").read()
    wf = re.sub(r"^/work/wt-[^/]+/", "/work/main/", re.search(r"world_files:\n- (.*)\n", txt).group(1).strip())
    if wf not in worlds: worlds[wf] = load_world(wf)
    return worlds[wf], txt.split("\n---\n", 1)[1]
hits = collections.Counter(); per = collections.defaultdict(list)
for f in sorted(set(glob.glob("/tmp/r4[3-9]/**/story/*.md", recursive=True))):
    try: w, body = world_of(f)
    except Exception: continue
    nstories[w.id] += 1
    vocab = relation_vocabulary(w)
    low = [t.casefold() for t in re.findall(r"[A-Za-z]+", body)]
    for g, (words, cues) in GROUPS.items():
        if set(words + cues) & vocab: continue
        found = [t for t in low if t in words]
        if found: hits[g] += 1; per[g].append((w.id, found[:4]))
print(dict(nstories))
for g in GROUPS:
    allowed = [w.id for w in worlds.values() if set(GROUPS[g][0] + GROUPS[g][1]) & relation_vocabulary(w)]
    print(g, "allowed in", allowed, "| stories with a hit:", hits[g], collections.Counter(x for _, fs in per[g] for x in fs).most_common(12))
    print("  ", collections.Counter(w for w, _ in per[g]).most_common())
