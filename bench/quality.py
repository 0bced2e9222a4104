"""Quality of metagen's compact weight formats (bfloat16, int8, int4) against float32.

Perplexity on a fixed English text (teacher-forced, one forward pass over the whole text),
and greedy generations on three reference prompts compared token by token with float32.
Targets: perplexity within 2% of float32; the first 32 greedy tokens identical.

    python bench/quality.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import shlex
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

BENCH = Path(__file__).resolve().parent
RESULTS_JSON = BENCH / "results.json"
RESULTS_MD = BENCH / "RESULTS.md"
QUALITY_HEADING = "## Quality of compact formats"

PPL_TOLERANCE = 0.02  # relative perplexity difference allowed against float32
SAME_TOKENS = 32  # greedy tokens that must match float32 exactly
GREEDY_TOKENS = 64  # greedy tokens generated per prompt (forced: end-of-text suppressed)

# Plain prose, written for this check (no quotations from elsewhere); about 400 tokens.
TEXT = """\
The village of Harrowby sits where the river slows down and spreads into a wide, shallow \
bend. In the spring the water rises over the lower meadows, and for a few weeks the \
farmers move their sheep to the hills and wait. Nobody complains much. The flood brings \
soft black mud, and the mud is the reason the barley grows so well in the summer.

Most of the houses are built from grey stone taken from an old quarry on the far side of \
the valley. The roofs are slate, and the chimneys lean a little, as if they were listening \
to something in the wind. There is one shop, one school, and a church with a clock that \
has been ten minutes slow for as long as anyone can remember. People set their watches by \
it anyway, and so the whole village is late together, which is a kind of punctuality.

On market days the square fills with carts. A woman from the next valley sells cheese \
wrapped in cloth, and an old man sells knives that he sharpens while you watch. Children \
run between the stalls with their pockets full of apples, and the baker sells out of bread \
before noon. In the afternoon the traders pack up, the square is swept, and the pigeons \
come back to argue over the crumbs.

In winter the days are short and the evenings are long. Families gather in the kitchen, \
where the stove is warm, and someone usually tells a story. The stories change a little \
each time they are told. A fox becomes a wolf, a storm becomes a flood, and a lost coin \
becomes a chest of gold. Nobody minds. Everyone knows that a good story is not a record of \
what happened. It is a way of remembering who we are, and of deciding who we would like \
to be when the spring comes back.
"""

PROMPTS = (
    "Describe a busy harbour town at dawn.",
    "Write a short dialogue between a blacksmith and a travelling merchant.",
    "Explain why the sky is blue in two sentences.",
)


def perplexity(generator, ids: list[int], decode_path: bool = True) -> tuple[float, torch.Tensor]:
    """exp(mean negative log-likelihood) of ids[1:] given the tokens before; and the argmaxes.

    decode_path: compute as generated tokens are (the format's own kernels and activation
    dtype); otherwise as a prompt is (widened weights, the prompt dtype, from WIDENED_POSITIONS positions a row).
    """
    import metagen.model as model_module

    model = generator.model
    tokens = torch.tensor([ids], dtype=torch.long, device=model.device)  # (1, T)
    saved = model_module.WIDENED_POSITIONS
    model_module.WIDENED_POSITIONS = 10**9 if decode_path else saved
    try:
        logits = model(tokens, cache=model.new_cache(1, tokens.shape[1]))  # (1, T, V) float32
    finally:
        model_module.WIDENED_POSITIONS = saved
    nll = F.cross_entropy(logits[0, :-1].float(), tokens[0, 1:])
    return math.exp(float(nll)), logits[0, :-1].argmax(dim=-1).cpu()


def greedy_tokens(generator, prompt: str) -> list[int]:
    from metagen.config import GenerationConfig

    cfg = GenerationConfig(strategy="greedy", max_new_tokens=GREEDY_TOKENS, min_new_tokens=GREEDY_TOKENS,
                           repetition_penalty=1.0)
    return generator.generate([prompt], cfg, seeds=[0])[0].tokens


def leading_same(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def measure(threads: int) -> dict:
    from metagen.generator import load_model
    from metagen.linears import WEIGHT_FORMATS

    torch.set_num_threads(threads)
    rows = {}
    reference = None
    formats = ["float32", *(f for f in WEIGHT_FORMATS if f != "float32")]  # float32 first: the reference
    for fmt in formats:
        generator = load_model(dtype=fmt)
        ids = generator.tokenizer.encode(TEXT)
        ppl, argmax = perplexity(generator, ids)
        prompt_ppl, _ = perplexity(generator, ids, decode_path=False)
        greedy = [greedy_tokens(generator, p) for p in PROMPTS]
        if reference is None:
            reference = {"ppl": ppl, "prompt_ppl": prompt_ppl, "argmax": argmax, "greedy": greedy}
        same = [leading_same(g, r) for g, r in zip(greedy, reference["greedy"])]
        rel = (ppl - reference["ppl"]) / reference["ppl"]
        rows[fmt] = {
            "perplexity": ppl,
            "relative_to_float32": rel,
            "prompt_path_perplexity": prompt_ppl,
            "prompt_path_relative_to_float32": (prompt_ppl - reference["prompt_ppl"]) / reference["prompt_ppl"],
            "top1_agreement": float((argmax == reference["argmax"]).float().mean()),
            "identical_leading_tokens": same,
            "greedy_texts": [generator.tokenizer.decode(g) for g in greedy],
            "ppl_met": abs(rel) <= PPL_TOLERANCE,
            "greedy_met": all(n >= SAME_TOKENS for n in same),
        }
        print(f"{fmt:9s} ppl {ppl:8.4f} ({rel:+.2%})  identical leading greedy tokens {same}", flush=True)
        del generator
    import metagen

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=BENCH.parent,
                            capture_output=True, text=True).stdout.strip() or None
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "metagen"], cwd=BENCH.parent,
                           capture_output=True, text=True).stdout.strip()
    return {
        "commit": commit, "metagen_dirty": bool(dirty),
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": shlex.join(["python", "bench/quality.py", *sys.argv[1:]]),
        "metagen": metagen.__version__, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "text_tokens": len(ids), "greedy_tokens": GREEDY_TOKENS, "prompts": list(PROMPTS),
        "ppl_tolerance": PPL_TOLERANCE, "same_tokens_required": SAME_TOKENS, "formats": rows,
    }


def render_markdown(quality: dict) -> str:
    lines = [
        QUALITY_HEADING,
        "",
        f"Written by `{quality['command']}` on {quality['date']} (metagen {quality['metagen']} at commit "
        f"{quality.get('commit')}{' with uncommitted changes in metagen/' if quality.get('metagen_dirty') else ''}, "
        f"torch {quality['torch']}, {quality['threads']} threads).",
        f"Perplexity of a fixed {quality['text_tokens']}-token English text (bench/quality.py, one "
        "teacher-forced forward pass through the format's own kernels and activation dtype, as generated",
        "tokens are computed; 'prompt path': the same pass as a prompt is processed, float32 activations",
        "from 64 rows); top-1 agreement: positions where the most likely next token",
        f"is the same as float32's. Greedy: {quality['greedy_tokens']} tokens forced on each of "
        f"{len(quality['prompts'])} chat prompts; the table gives how many leading tokens equal float32's.",
        f"Targets: perplexity within {quality['ppl_tolerance']:.0%} of float32, and at least "
        f"{quality['same_tokens_required']} identical leading tokens on every prompt.",
        "",
        "| format | perplexity | vs float32 | prompt path vs float32 | top-1 agreement | "
        "identical leading greedy tokens | perplexity target | greedy target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for fmt, row in quality["formats"].items():
        same = ", ".join(str(n) for n in row["identical_leading_tokens"])
        lines.append(
            f"| {fmt} | {row['perplexity']:.3f} | {row['relative_to_float32']:+.2%} | "
            f"{row.get('prompt_path_relative_to_float32', float('nan')):+.2%} | {row['top1_agreement']:.1%} | {same} (of {quality['greedy_tokens']}) | "
            f"{'met' if row['ppl_met'] else '**not met**'} | {'met' if row['greedy_met'] else '**not met**'} |")
    lines += ["", "Prompts: " + "; ".join(f"({i + 1}) \"{p}\"" for i, p in enumerate(quality["prompts"])), ""]
    return "\n".join(lines)


def write_results(quality: dict) -> None:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (BENCH / f"results-quality-{stamp}.json").write_text(json.dumps(quality, indent=2) + "\n")
    report = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    report["quality"] = quality
    RESULTS_JSON.write_text(json.dumps(report, indent=2) + "\n")
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else "# Benchmarks\n"
    at = text.find(QUALITY_HEADING)  # the section is always last: replace it
    head = (text[:at] if at >= 0 else text).rstrip("\n") + "\n\n"
    RESULTS_MD.write_text(head + render_markdown(quality))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md and results.json alone")
    args = parser.parse_args()
    quality = measure(args.threads)
    print()
    print(render_markdown(quality))
    if not args.no_write:
        write_results(quality)
        print(f"wrote {RESULTS_JSON.name} and {RESULTS_MD.name} in bench/")


if __name__ == "__main__":
    main()
