"""round47/evalcounts.py with any /work/wt-NAME/ world path read from /work/main and the strangers measure:
python evalcounts.py DIR_A[,DIR_A2] DIR_B[,DIR_B2] "label A" "label B"."""
import glob, re, sys, yaml
from metagen.measure import Output, score, summarize, world_reference
from metagen.world import load_world
worlds, refs = {}, {}
def measures(label_dirs):
    outs = []
    for d in label_dirs:
        for f in sorted(glob.glob(f'{d}/**/story/*.md', recursive=True)):
            front, body = open(f).read()[4:].split('\n---\n', 1)
            meta = yaml.safe_load(front)
            wf = re.sub(r'^/work/wt-[^/]+/', '/work/main/', meta['world_files'][0])
            w = worlds.setdefault(wf, load_world(wf)); ref = refs.setdefault(wf, world_reference(w))
            o = Output(world=w.id, kind='story', system='metagen', request=meta['request'], seed=meta['settings'].get('seed', 0),
                       text=body.strip(), output_tokens=meta.get('output_tokens') or 0, finish_reason=meta.get('finish_reason', ''))
            outs.append(score(w, o, ref, meta['settings']))
    return summarize(outs, 0)
before = measures(sys.argv[1].split(',')); after = measures(sys.argv[2].split(','))
keys = ["outputs", "grounding_model", "invented_outputs", "strangers", "invented_relatives", "wrong_kin", "invented_ranks",
        "off_world_dates", "wrong_tense", "tense_slips", "wrong_pronoun", "garbled", "copied", "stock", "repetition", "words"]
print(f"| measure (stories) | {sys.argv[3]} | {sys.argv[4]} |\n|---|---|---|")
for k in keys:
    f = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)
    print(f"| {k} | {f(before[k])} | {f(after[k])} |")
