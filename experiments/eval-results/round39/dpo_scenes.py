"""Preference training (DPO, Rafailov et al. 2023) of the shipped adapter on readers' blind choices
between two scenes (issue 19 probe, round thirty-nine).

Every filled ratings.csv under experiments/eval-results with its pair-NNN.md files gives pairs of
scenes a reader chose between (duplicates merged by majority; ties dropped). Each pair is put
behind today's scene prompt for its world and place, and the shipped adapter (as the starting
policy and the frozen reference) is trained with the DPO loss
    -log sigmoid(beta * ((log pi(chosen) - log ref(chosen)) - (log pi(rejected) - log ref(rejected)))).
Pairs from the HELD worlds are never trained on: they measure whether the learned preference
carries to worlds it never saw (the share of pairs whose implicit reward ranks the reader's choice
first). Writes a bfloat16 adapter `metagen --adapter PATH` takes.

python dpo_scenes.py OUT.safetensors [--max-pairs N] [--beta B] [--lr LR] [--batch N] [--kind scene]
"""
import argparse
import collections
import csv
import glob
import os
import random
import re
import time

import torch
import torch.nn.functional as F

from metagen.generator import adapter_file, load_model, KNOWN_MODELS
from metagen.lora import adapter_tensors, attach, load_adapter, save_adapter
from metagen.prompts import build_prompt
from metagen.request import SceneRequest
from metagen.tune import _start_from
from metagen.world.load import load_world

HELD = {"h2-copperleaf-terraces", "h4-quillon-halt", "h5-linden-apiary", "h6-solenne-kite-market"}
ROOT = os.path.join(os.path.dirname(__file__), "..")


def collect(kind, subject="place"):
    """Decided pairs of `kind`, keyed on the pair file's `- subject:` line (a scene's place, a dialogue's
    cast); each pair also carries every `- key: value` line of its file as `header`."""
    votes = {}
    for sheet in glob.glob(os.path.join(ROOT, "**/ratings.csv"), recursive=True):
        folder = os.path.dirname(sheet)
        try:
            rows = list(csv.DictReader(open(sheet)))
        except Exception:
            continue
        for row in rows:
            choice, name = (row.get("preferred") or "").strip(), (row.get("pair") or "").strip()
            path = os.path.join(folder, name + ".md")
            if choice not in ("1", "2") or not os.path.exists(path):
                continue
            text = open(path).read()
            if not re.search(rf"^- kind: {kind}\s*$", text, re.M):
                continue
            header = dict(re.findall(r"^- (\w+): (.+?)\s*$", text.split("## Text")[0], re.M))
            parts = re.split(r"^## Text [12]\s*$", text, flags=re.M)
            if len(parts) != 3 or subject not in header:
                continue
            one, two = parts[1].strip(), parts[2].strip()
            key = (header["world"], header[subject], *sorted([one, two]))
            entry = votes.setdefault(key, {"folder": folder, "header": header, "votes": collections.Counter()})
            entry["votes"][one if choice == "1" else two] += 1
    pairs = []
    for (world, place, a, b), entry in votes.items():
        top = entry["votes"].most_common()
        if len(top) > 1 and top[0][1] == top[1][1]:
            continue
        chosen = top[0][0]
        pairs.append({"world": world, subject: place, "chosen": chosen, "rejected": b if chosen == a else a,
                      "folder": entry["folder"], "header": entry["header"]})
    return pairs


def worlds_in(folder, cache={}):
    """World name -> (World, file stem): the folder's own world files over the repository's."""
    if folder not in cache:
        found = dict(worlds_in("<repository>")) if folder != "<repository>" else {}
        paths = (glob.glob("worlds/*.yaml") + ["worlds/harbour/world.yaml"] + glob.glob("corpus/worlds/*.yaml")
                 if folder == "<repository>" else glob.glob(os.path.join(folder, "*.yaml")))
        for path in paths:
            try:
                world = load_world(path, allow_outside=True)
            except Exception:
                continue
            found[world.name] = (world, os.path.splitext(os.path.basename(path))[0])
        if folder == "<repository>":
            found["The Realm of Ashenmere"] = found.get("The Realm of Ashenmere") or found.get("Ashenmere")
        cache[folder] = found
    return cache[folder]


def prompt_ids(tok, world, place_name):
    loc = next((l for l in world.locations if l.name == place_name or l.id == place_name), None)
    if loc is None:
        return None
    prompt = build_prompt(world, SceneRequest(location=loc.id), count_tokens=tok.count, context_length=8192,
                          max_new_tokens=200)
    return tok.encode_chat(prompt.messages)


def logprob(model, prompt, completion):
    ids = torch.tensor([prompt + completion])
    states = model.training_states(ids[:, :-1])[0]  # (T-1, dim)
    where = torch.arange(len(prompt) - 1, len(prompt) + len(completion) - 1)
    logits = model.output(states[where]).float()  # (N, V)
    return torch.log_softmax(logits, -1).gather(1, ids[0, where + 1][:, None]).sum()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--max-pairs", type=int, default=400)
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--kind", default="scene")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    generator = load_model(None, dtype="float32", adapter="none")
    model, tok = generator.model, generator.tokenizer
    shipped = load_adapter(adapter_file("default", KNOWN_MODELS[generator.info.name]), model.args, generator.info.sha256)
    attach(model, shipped.config)
    _start_from(model, shipped)
    end = tok.end_of_turn_id
    train, held = [], []
    for pair in collect(a.kind):
        found = worlds_in(pair["folder"]).get(pair["world"])
        if found is None:
            continue
        world, stem = found
        ids = prompt_ids(tok, world, pair["place"])
        if ids is None:
            continue
        item = (ids, tok.encode_plain(pair["chosen"]) + [end], tok.encode_plain(pair["rejected"]) + [end])
        (held if stem in HELD else train).append(item)
    random.Random(a.seed).shuffle(train)
    train = train[:a.max_pairs]
    print(f"pairs: {len(train)} to train, {len(held)} held-aside", flush=True)
    bf16 = torch.autocast("cpu", dtype=torch.bfloat16)

    def margins(items):  # log pi(chosen) - log pi(rejected), no gradients
        with torch.no_grad(), bf16:
            return [float(logprob(model, q, c) - logprob(model, q, r)) for q, c, r in items]

    started = time.time()
    ref_train = margins(train)
    ref_held = margins(held)
    print(f"reference margins: {time.time() - started:.0f} s; held-aside chosen likelier in "
          f"{sum(m > 0 for m in ref_held)} of {len(held)}", flush=True)
    params = [q for name, q in model.named_parameters() if "lora_" in name]
    optimizer = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.0)
    for start in range(0, len(train), a.batch):
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for (q, c, r), ref in zip(train[start:start + a.batch], ref_train[start:start + a.batch]):
            with bf16:
                margin = logprob(model, q, c) - logprob(model, q, r)
            loss = -F.logsigmoid(a.beta * (margin - ref)) / a.batch
            loss.backward()
            total += loss.item()
        optimizer.step()
        print(f"step {start // a.batch + 1}: loss {total:.4f} ({time.time() - started:.0f} s)", flush=True)
    after = margins(held)
    won = sum((m - r) > 0 for m, r in zip(after, ref_held))
    print(f"held-aside: implicit reward ranks the reader's choice first in {won} of {len(held)}; "
          f"mean reward margin {sum(a_ - r for a_, r in zip(after, ref_held)) / max(1, len(held)) * a.beta:.4f}", flush=True)
    save_adapter(a.out, adapter_tensors(model), shipped.config, generator.info.sha256, dtype=torch.bfloat16)
    print("saved", a.out, f"{time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
