"""Which measurable traits of a story agree with blind readers' choices (round forty-two).

Every decided story pair of rounds nine on (round thirty-nine's dpo_scenes.collect: pair-NNN.md and
ratings.csv, the same pair read twice merged by majority) is scored as the eval scores a story
(metagen.measure.score: invented names, made-up relatives, wrong kin, wrong pronouns, copied prose,
stock phrases, repetition, wrong tense) plus a few plain counts (words, paragraphs, quoted speech, a
pasted "X admitted that", the longest run of words shared with the world's prose). For each trait: the
pairs where the two texts differ, and how often the reader chose the side with less of it.

python story_agreement.py            (from the repository root)
"""
import collections
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "round39"))
from dpo_scenes import collect, worlds_in  # noqa: E402

from metagen.critic import longest_shared_run, _STOCK  # noqa: E402
from metagen.measure import Output, score, world_reference  # noqa: E402
from metagen.text import words_of  # noqa: E402

HELD = {"The Terraces of Copperleaf", "Quillon Halt", "The Linden Apiary", "The Kite Market of Solenne"}


def ids(world, header):
    names = [n.strip() for n in header.get("cast", "").split(",") if n.strip()]
    cast = [c.id for n in names for c in world.characters if n in (c.name, c.id)]
    place = next((l.id for l in world.locations if header.get("place") in (l.name, l.id)), None)
    return cast, place


def traits(world, reference, text, cast, place):
    out = score(world, Output(world.id, "story", "metagen", {"kind": "story", "characters": cast, "location": place},
                              0, text, 0, "eos"), reference)
    words = words_of(text)
    prose = [w for t in reference.prose for w in words_of(t)]
    return {
        "invented": len(out.unknown[0]), "relatives": len(out.relatives), "kin": len(out.kin),
        "ranks": len(out.ranks), "dates": len(out.dates), "pronouns": len(out.pronouns),
        "wrong_tense": int(out.wrong_tense), "copied8": int(out.copied[0]), "stock": len(out.stock),
        "stock_critic": len(_STOCK.findall(text)), "repetition": out.repetition,
        "missing_names": len(out.missing), "admitted": len(re.findall(r"\b(?:admitted|admits) that\b", text)),
        "shared_run": longest_shared_run(words, prose), "words": len(words),
        "paragraphs": len([p for p in text.split("\n\n") if p.strip()]),
        "quotes": text.count('"') // 2 + text.count("“"),
        "exclaims": text.count("!"), "dollars_numbers": len(re.findall(r"\d", text)),
    }


def main():
    pairs = collect("story", subject="cast")
    tally = collections.defaultdict(lambda: [0, 0, 0, 0])  # differ, chose less, differ held, chose less held
    used = 0
    for pair in pairs:
        found = worlds_in(pair["folder"]).get(pair["world"])
        if found is None:
            continue
        world = found[0]
        cast, place = ids(world, pair["header"])
        if not cast:
            continue
        reference = world_reference(world)
        try:
            a = traits(world, reference, pair["chosen"], cast, place)
            b = traits(world, reference, pair["rejected"], cast, place)
        except Exception as error:  # a request the world no longer resolves
            print("skipped:", pair["world"], error, file=sys.stderr)
            continue
        used += 1
        held = pair["world"] in HELD
        for k in a:
            if a[k] != b[k]:
                t = tally[k]
                t[0] += 1
                t[1] += a[k] < b[k]
                if held:
                    t[2] += 1
                    t[3] += a[k] < b[k]
    print(f"{used} story pairs of {len(pairs)}")
    print("| trait | pairs that differ | reader chose the side with less | held-aside worlds |")
    print("|---|---|---|---|")
    for k, (n, less, hn, hless) in sorted(tally.items(), key=lambda kv: -abs(kv[1][1] / kv[1][0] - 0.5)):
        print(f"| {k} | {n} | {less} ({100 * less / n:.0f}%) | {hless} of {hn} |")


if __name__ == "__main__":
    main()
