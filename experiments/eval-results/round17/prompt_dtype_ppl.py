"""Issue 16: perplexity of bench/quality.py's text on the prompt path, int4, float32 against
bfloat16 prompts, and the float32 model for reference."""
import sys
sys.path.insert(0, "bench")
from quality import TEXT, perplexity
from metagen.generator import load_model

ref = load_model(dtype="float32")
ids = ref.tokenizer.encode(TEXT) if hasattr(ref.tokenizer, "encode") else None
print("tokens", len(ids))
print("float32 model", round(perplexity(ref, ids, decode_path=False)[0], 4))
for d in ("float32", "bfloat16"):
    g = load_model(prompt_dtype=d)
    ppl, argmax = perplexity(g, ids, decode_path=False)
    print("int4, prompts in", d, round(ppl, 4))
