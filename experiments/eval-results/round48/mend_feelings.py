"""Mend the corpus ties whose kind names a feeling or a deal, not a person (round forty-eight).

A noun kind reads "OTHER is THIS's KIND" (metagen/prompts.py, tie_sentence), so `distrust` read
"Ezekiel is Tavi's distrust". Each is now a kind ending in a preposition, said from this character
("Tavi is wary of Ezekiel"), or a noun that names what the other is to them ("Sable is Benedek's
shadow"). Edits the world files as text with round forty-seven's mend_world (one entry each).
Only story cards quote ties, and no stored beat instruction quotes one of these kinds.
"""
import importlib.util
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
spec = importlib.util.spec_from_file_location("mend_ties", HERE.parent / "round47" / "mend_ties.py")
mend_ties = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mend_ties)

FIXES = [  # (world, this, other, old kind, new kind)
    ("h1-barge-river", "teo", "emmerich", "fascination", "is fascinated by"),
    ("h1-barge-river", "emmerich", "teo", "fondness", "is fond of"),
    ("h1-drowned-crown", "casimir", "nohr", "uneasy bargain", "has an uneasy bargain with"),
    ("h1-drowned-crown", "nohr", "casimir", "uneasy bargain", "has an uneasy bargain with"),
    ("h1-frozen-whale", "orm", "toke", "old quarrel", "has an old quarrel with"),
    ("h1-frozen-whale", "toke", "orm", "old quarrel", "has an old quarrel with"),
    ("h1-peat-moor", "wat", "greer", "fearful respect", "has a fearful respect for"),
    ("h1-shadow-tailor", "benedek", "sable", "his own shadow", "shadow"),
    ("h1-shadow-tailor", "hettie", "sable", "secret courtship", "is secretly in love with"),
    ("h1-sun-wheel", "ilka", "kettle-crow", "suspicious friendship", "is wary of the friendship of"),
    ("h1-titan-ribs", "tobiah", "helvard", "dread", "is afraid of"),
    ("h1-toll-bridge", "agathe", "rafe", "exasperated fondness", "is exasperated by and fond of"),
    ("h1-toll-bridge", "agathe", "perrin", "uneasy partnership", "is in an uneasy partnership with"),
    ("h1-winter-quarters", "brisa", "yevgenia", "wary respect", "has a wary respect for"),
    ("h1-winter-quarters", "yevgenia", "brisa", "wary respect", "has a wary respect for"),
    ("h2-kethrin-embassy", "corvin", "tamsin", "reluctant dependence", "reluctantly depends on"),
    ("h2-sable-reef", "tavi", "ezekiel", "distrust", "is wary of"),
    ("h3-brine-ledger", "dorran", "orla", "ally and worry", "is an uneasy ally of"),
    ("h3-copper-gulch", "sable", "dory", "wary respect", "has a wary respect for"),
    ("h3-indigo-wharf", "sema", "hoyt", "suspicion", "is suspicious of"),
    ("h3-reed-market", "marrobec", "piri", "grudging fondness", "is grudgingly fond of"),
    ("h3-salt-caravans", "seferi", "dabu", "suspicion", "is suspicious of"),
    ("h3-tamsir-oasis", "yarro", "odelmar", "hero worship", "looks up to"),
    ("h3-wenlow-crossing", "hattie", "fairweather", "hero worship", "looks up to"),
    ("h4-glass-orchard", "aldemar", "grisel", "old bargain", "has an old bargain with"),
    ("h4-glass-orchard", "grisel", "aldemar", "old bargain", "has an old bargain with"),
    ("h4-greywater-sanatorium", "pell", "doctor-amsel", "distrust", "is wary of"),
    ("h5-thirteenth-bell", "dunya", "mirela", "grudging respect", "has a grudging respect for"),
    ("h6-ourm-bone-pits", "ossarane", "tova", "obsession", "is obsessed with"),
    ("h7b-crooked-lantern", "ysolde", "corvin", "the card she has built everything around", "favourite card"),
]

if __name__ == "__main__":
    for world, this, other, old, new in FIXES:
        mend_ties.mend_world(ROOT / "corpus" / "worlds" / f"{world}.yaml", this, other, old, new)
