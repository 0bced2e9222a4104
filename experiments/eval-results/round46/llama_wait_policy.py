# llama_wait_policy.py THREADS: llama-cpp-python greedy tokens/s (128 tokens, prompt included), three runs; run with and without OMP_WAIT_POLICY=PASSIVE (llama_wait_policy.txt, round 46)
import sys, time, glob, os
from llama_cpp import Llama
path = glob.glob("/tmp/r43/home/**/SmolLM2-135M-Instruct.Q4_1.gguf", recursive=True)[0]
n = int(sys.argv[1])
llm = Llama(model_path=path, n_threads=n, n_threads_batch=n, verbose=False, n_ctx=512, logits_all=False)
toks = llm.tokenize(b"Write a short story about a lighthouse keeper who finds a message in a bottle.")
for rep in range(3):
    llm.reset(); llm.eval(toks)
    t = time.perf_counter(); k = 0
    for tok in llm.generate(toks, temp=0.0, reset=True):
        k += 1
        if k == 128: break
    dt = time.perf_counter() - t
    print(f"threads {n} OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY','-')}: {k/dt:.1f} tok/s (incl. prompt)")
