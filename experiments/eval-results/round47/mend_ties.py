"""Mend the corpus ties round forty-six's audit found backwards or unreadable (corpus-ties.md).

A noun kind reads "OTHER is THIS's KIND" (metagen/prompts.py, tie_sentence). Each row: the world,
this character, the other, the kind as written and the kind that reads right. Edits the world
files' text in place (one `{with: OTHER, kind: OLD` entry inside THIS character's block), then
brings stored beat instructions that quote a mended kind up to the plan metagen now makes.
"""
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

FIXES = [  # (world, this, other, old kind, new kind)
    ("h1-bee-oracle", "thessamon", "kallidra", "petitioner", "oracle keeper"),
    ("h1-dyers-quarter", "noor", "corvin", "fearful ambition", "feared guildmaster"),
    ("h1-dyers-quarter", "corvin", "noor", "predatory patron", "protégée and prey"),
    ("h1-frozen-whale", "asta", "orm", "sworn skald", "jarl"),
    ("h1-frozen-whale", "orm", "asta", "patron", "sworn skald"),
    ("h1-glass-orchard", "lark", "aldous", "loyal subject", "king"),
    ("h1-glass-orchard", "aldous", "lark", "hopeful king", "loyal subject"),
    ("h1-magpie-rain", "awinta", "grandmother-magpie", "hopeful messenger", "rain keeper"),
    ("h1-magpie-rain", "awinta", "long-tail", "old kindness", "old debtor"),
    ("h1-magpie-rain", "grandmother-magpie", "awinta", "reluctant helper", "hopeful messenger"),
    ("h1-magpie-rain", "long-tail", "awinta", "owes her a kindness", "old benefactor"),
    ("h1-moonflour-mill", "greywing", "piet", "mother he does not know", "son who does not know her"),
    ("h1-peat-moor", "greer", "wat", "watchful keeper of his secret", "boy whose secret she keeps"),
    ("h1-reef-songs", "sefo", "ilimoa", "creditor", "debtor"),
    ("h1-sun-wheel", "ilka", "vardra", "apprentice", "teacher"),
    ("h1-tethered-isles", "oriane", "hrodny", "former apprentice", "old teacher"),
    ("h1-tethered-isles", "hrodny", "oriane", "teacher", "former apprentice"),
    ("h1-toll-bridge", "rafe", "agathe", "old debt", "old creditor"),
    ("h1-toll-bridge", "rafe", "perrin", "cat and mouse", "pursuer"),
    ("h1-toll-bridge", "perrin", "rafe", "cat and mouse", "quarry"),
    ("h1-upward-river", "hanaru", "adamar", "unexpected confidant", "royal visitor"),
    ("h1-well-at-bottom", "ollob", "rollo", "fond host", "favourite guest"),
    ("h1-wind-suitor", "wrenna", "babette", "granddaughter", "grandmother"),
    ("h1-wind-suitor", "babette", "wrenna", "grandmother", "granddaughter"),
    ("h2-comet-vell", "priya", "ingrid", "second in command", "commander"),
    ("h2-copperleaf-terraces", "ottoline", "rosalind", "wary host", "uneasy guest"),
    ("h2-copperleaf-terraces", "rosalind", "ottoline", "uneasy guest", "wary host"),
    ("h2-eskeri-borehole", "yetunde", "kaito", "mentor", "student"),
    ("h2-eskeri-borehole", "kaito", "yetunde", "student", "mentor"),
    ("h2-pells-reach-academy", "linnea", "hesper", "student", "commandant and great-aunt"),
    ("h2-thousand-hulls", "ondine", "adaeze", "mentor", "protégée"),
    ("h2-thousand-hulls", "adaeze", "ondine", "student", "mentor"),
    ("h2-umberhold-grown", "sabine", "lio", "mentor", "apprentice"),
    ("h3-amber-ford", "lenne", "vaidra", "sworn servant", "liege lady"),
    ("h3-black-gull", "hesper", "jory", "protector", "ward"),
    ("h3-glass-dunes", "avessa", "qerim", "employer", "hired guide"),
    ("h3-indigo-wharf", "hoyt", "sema", "false friend", "mark"),
    ("h3-spice-monsoon", "tolliver", "anjeli", "predatory rival", "prey and rival"),
    ("h4-fennick-eye", "kit", "judith", "guard and secret ally", "charge and secret ally"),
    ("h4-marrowby-sowing", "hester", "amir", "host", "guest"),
    ("h4-thornaby-glasshouses", "abel", "cordelia", "old servant", "mistress"),
    ("h4-wendle-schoolhouse", "bessie", "tamsin", "wary neighbour", "nosy neighbour"),
    ("h5-bramblewick-hedge", "ferrant", "orrin", "accused before the magistrate", "magistrate"),
    ("h5-cairnhollow-observatory", "casimir", "oriane", "reluctant assistant", "reluctant employer"),
    ("h5-cloudherd-quest", "halcyon", "ines", "unexpected teacher", "unexpected pupil"),
    ("h5-great-marrow-succession", "bartholomew", "maud", "secret supporter", "secret favourite"),
    ("h5-quenby-cider", "rosamund", "ambrose", "employer", "hired detective"),
    ("h5-shellback-commons", "hob", "teo", "mentor and nuisance", "protégé and nuisance"),
    ("h5-thirteenth-bell", "silvan", "mirela", "creditor", "debtor"),
    ("h6-ammarine-cistern", "ashra", "omi", "mentor", "student"),
    ("h6-ammarine-cistern", "omi", "ashra", "student", "teacher"),
    ("h6-brassvale-boilers", "hesper", "pim", "protector", "ward"),
    ("h6-cloudstep-monastery", "anshi", "lirong", "secret admirer and rival", "secret idol and rival"),
    ("h6-cloudstep-monastery", "wuyin", "anshi", "distant master", "distant pupil"),
    ("h6-glowcap-hollow", "fennick", "bettle", "student", "teacher"),
    ("h6-glowcap-hollow", "bettle", "fennick", "teacher", "student"),
    ("h6-glowcap-hollow", "orrin", "fennick", "exasperated elder", "young nuisance"),
    ("h6-glowcap-hollow", "fennick", "orrin", "nervous opponent", "opponent"),
    ("h6-jade-silt-teahouses", "shoulin", "cricket", "reluctant guardian", "reluctant ward"),
    ("h6-jade-silt-teahouses", "cricket", "shoulin", "adopted shadow", "reluctant guardian"),
    ("h6-kessrow-airwaves", "dagny", "karsa", "hunter and hunted", "hunter"),
    ("h6-kessrow-airwaves", "karsa", "dagny", "hunter and hunted", "quarry"),
    ("h6-marrowgate-night-market", "odalys", "kit", "employer", "courier"),
    ("h6-marrowgate-night-market", "kit", "odalys", "employee", "employer"),
    ("h6-nine-reed-marsh", "qiaoyu", "mo", "master and disciple", "master"),
    ("h6-nine-reed-marsh", "mo", "qiaoyu", "master and disciple", "disciple"),
    ("h6-ninestair-undercity", "sabe", "gristle", "regular", "landlady"),
    ("h6-ninestair-undercity", "gristle", "sabe", "landlady and friend", "regular and friend"),
    ("h6-tickwater-locks", "juniper", "hollowell", "master and apprentice", "master"),
    ("h6-tickwater-locks", "hollowell", "juniper", "master and apprentice", "apprentice"),
    ("h6-vhorza-drowned-temple", "mosi", "ingrith", "trusted guide", "captain"),
    ("h6-vhorza-drowned-temple", "anvay", "ingrith", "employer", "hired captain"),
    ("h6-windrose-packet", "ofelia", "nico", "captain and post-boy", "post-boy"),
    ("h6-windrose-packet", "nico", "ofelia", "captain and post-boy", "captain"),
    ("h6-wispwick-lamps", "lucan", "ada", "suspect", "suspicious clerk"),
]


def mend_world(path: Path, this: str, other: str, old: str, new: str) -> None:
    """Replace OLD with NEW in THIS character's tie to OTHER, and nowhere else.

    Ties are written either in flow style (`- {with: x, kind: y}`) or as a block (`- with: x` and
    `kind: y` on the next lines); the `kind:` line of the right entry is edited as text.
    """
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    owner, tie_with, hits = None, None, []
    quote = "['\"]?"
    for i, line in enumerate(lines):
        if m := re.match(r"\s*-\s*id:\s*['\"]?([\w-]+)", line):
            owner, tie_with = m.group(1), None
        if m := re.search(rf"with:\s*{quote}([\w-]+)", line):
            tie_with = m.group(1)
        if owner == this and tie_with == other and re.search(rf"kind:\s*{quote}{re.escape(old)}{quote}\s*(,|}}|$)", line):
            hits.append(i)
    if len(hits) != 1:
        raise SystemExit(f"{path.name}: {this} -> {other} '{old}': {len(hits)} matches")
    i = hits[0]
    lines[i] = re.sub(rf"(kind:\s*){quote}{re.escape(old)}{quote}", lambda m: m.group(1) + new, lines[i], count=1)
    path.write_text("".join(lines), encoding="utf-8")


def _replace_folded(text: str, old: str, new: str, where: Path) -> str:
    """Swap one stored instruction for another, however YAML folded it over lines."""
    words = [re.escape(w).replace("'", "''?") for w in old.split()]  # '' inside single quotes
    pattern = re.compile(r"(instruction: )['\"]?" + r"\s+".join(words) + r"['\"]?(?=\n\s*(?:text|beat):)")
    found = pattern.findall(text)
    if len(found) != 1:
        raise SystemExit(f"{where}: instruction found {len(found)} times: {old}")
    quoted = "'" + new.replace("'", "''") + "'"
    return pattern.sub(lambda m: m.group(1) + quoted, text, count=1)


def main() -> None:
    for world, this, other, old, new in FIXES:
        mend_world(ROOT / "corpus" / "worlds" / f"{world}.yaml", this, other, old, new)
    # Beat instructions of the plan quote a tie's kind ("Show the bond between A and B (kind)");
    # the stored ones are brought up to the plan metagen makes from the mended world.
    from metagen.pipeline import make_request
    from metagen.plan import make_plan
    from metagen.request import resolve_request
    from metagen.world import load_world

    for world_id in sorted({f[0] for f in FIXES}):
        targets = ROOT / "corpus" / "targets" / f"{world_id}.yaml"
        text = targets.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
        world = load_world(targets.parent / data["world"])
        changed = []
        for story in data.get("stories") or []:
            request = make_request("story", world, characters=story["characters"], location=story["location"],
                                   length=story["length"])
            plan = make_plan(world, resolve_request(world, request), story["seed"])
            for beat, new in zip(story["beats"], plan):
                if beat["instruction"] != new.instruction:
                    print(f"{world_id} {beat['beat']}:\n  was: {beat['instruction']}\n  now: {new.instruction}")
                    changed.append((beat["instruction"], new.instruction))
            if len(plan) != len(story["beats"]):
                raise SystemExit(f"{world_id}: the plan's length changed")
        for old, new in changed:
            text = _replace_folded(text, old, new, targets)
        targets.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
