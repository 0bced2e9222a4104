"""metagen with story beats written a sentence at a time: each sentence drawn `count` times and the
critic's pick kept before the next is drawn (SENT_MAX sentences a beat, default 4)."""
import os, sys
from dataclasses import replace
from metagen import plan as P
from metagen.config import candidate_seed
from metagen.critic import NARRATION_WEIGHTS, best_index, judge
from metagen.editor import strike
from metagen.text import balanced_quotes

SENT_MAX = int(os.environ.get("SENT_MAX", "4"))
SENT_TOKENS = 60

def draw(generator, ids, beat_cfg, count, beat_seed, context, reuse, *, extra_rounds, insist_on_names=False,
         plain_ids=None, starts=()):
    tok = generator.tokenizer
    cfg = replace(beat_cfg, max_sentences=1, max_new_tokens=min(SENT_TOKENS, beat_cfg.max_new_tokens))
    paragraph, used, rounds = "", 0, 0
    total_tokens, logprob, finish, prompt_tokens = 0, 0.0, "eos", None
    all_cuts = ()
    verdict = None
    budget = beat_cfg.max_new_tokens
    for sentence in range(SENT_MAX):
        prompt = ids + (tok.encode_plain(paragraph) if paragraph else [])
        best = None
        for attempt in range(2):
            more = [candidate_seed(beat_seed, rounds * count + k) for k in range(count)]
            rounds += 1
            forced = ([tok.encode_plain(w) if w else [] for w in starts] if sentence == 0 and any(starts) else None)
            drawn = generator.complete([prompt] * count, cfg, seeds=more, reuse=reuse, forced=forced)
            scored = []
            for o in drawn:
                piece = " ".join(o.text.split())
                full = balanced_quotes((paragraph + " " + piece).strip() if paragraph else piece)
                edit = strike(full, context)
                v = judge(edit.text, context, logprob=o.logprob, tokens=o.output_tokens, struck=len(edit.struck),
                          weights=NARRATION_WEIGHTS)
                scored.append((o, piece, edit, v))
            # an empty piece: the model ends the paragraph here
            ends = sum(1 for o, piece, _, _ in scored if not piece)
            live = [s for s in scored if s[1]]
            if sentence >= 2 and ends * 2 >= count or not live:
                best = None
                break
            verdicts = [s[3] for s in live]
            pick = live[best_index(verdicts)]
            if best is None or pick[3].score > best[3].score:
                best = pick
            if P._good_enough(best[3], insist_on_names and sentence == SENT_MAX - 1):
                break
        if best is None:
            break
        o, piece, edit, v = best
        if edit.text == paragraph:  # the new sentence was struck
            break
        paragraph, verdict, all_cuts = edit.text, v, edit.struck
        total_tokens += o.output_tokens
        prompt_tokens = prompt_tokens or o.prompt_tokens
        finish = o.finish_reason
        if total_tokens >= budget:
            break
    if verdict is None:  # nothing kept: fall back to the whole-beat draw
        return ORIG(generator, ids, beat_cfg, count, beat_seed, context, reuse, extra_rounds=extra_rounds,
                    insist_on_names=insist_on_names, plain_ids=plain_ids, starts=starts)
    class Option:  # what write_story reads of a kept candidate
        pass
    opt = Option(); opt.text = paragraph; opt.output_tokens = total_tokens; opt.prompt_tokens = prompt_tokens or len(ids)
    opt.finish_reason = finish
    return [beat_seed], [opt], [verdict], [all_cuts]

ORIG = P._draw_candidates
P._draw_candidates = draw
from metagen.cli import app
app(sys.argv[1:], standalone_mode=False)
