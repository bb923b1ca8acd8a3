"""Loading the packaged LM: recsuite's dequantised copy against transformers reading the GGUF file itself.

Each load runs in a fresh Python process, as a lesson's kernel does, and is timed inside it in two parts: the
imports (torch, transformers: every lesson that uses a model pays them anyway) and the load proper (tokenizer and
weights ready in eval mode). recsuite: ``recsuite.models.causal_lm.CausalLM(None)`` — the fp32 safetensors copy
in ``datasets/lm/`` keyed by the GGUF file's SHA-256, every file's hash checked on each load, in a background
thread while the weights load, the model handed out only once they all match (``causal_lm.dequantised_copy``;
built here first if missing, not timed). The peer: ``AutoModelForCausalLM`` and
``AutoTokenizer.from_pretrained(folder, gguf_file=...)``, which parse and dequantise the GGUF file on every load.
Best of REPEATS fresh processes each. Prints both, the ratio, and the load against the target (<= 3 s).
Run: `.venv/bin/python benchmarks/bench_lm_load.py` (or `make bench`).
"""

import json
import subprocess
import sys

REPEATS = 3
TARGET_S = 3.0

CHILD = r"""
import json, os, sys, time
os.environ["HF_HUB_OFFLINE"] = "1"
t0 = time.perf_counter()
import torch, transformers
t1 = time.perf_counter()
if sys.argv[1] == "recsuite":
    from recsuite.models.causal_lm import CausalLM
    lm = CausalLM(None, device="cpu")
    net, tok = lm.model, lm.tokenizer
else:
    from pathlib import Path
    from recsuite.models.causal_lm import packaged_lm
    path = packaged_lm()
    tok = transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    net = transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    net.eval()
t2 = time.perf_counter()
ids = tok("A film about", return_tensors="pt").input_ids
with torch.no_grad():
    logits = net(ids).logits[0, -1]
print(json.dumps({"imports": t1 - t0, "load": t2 - t1, "top": int(logits.argmax())}))
"""


def run(which: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, which], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    run("recsuite")  # builds the dequantised copy when it is missing (once, not timed) and warms the file cache
    mine = min((run("recsuite") for _ in range(REPEATS)), key=lambda r: r["load"])
    peer = min((run("gguf") for _ in range(REPEATS)), key=lambda r: r["load"])
    assert mine["top"] == peer["top"], "the two loads disagree on the next token of a test prompt"
    print(f"fresh process, best of {REPEATS}: imports of torch + transformers {mine['imports']:.2f} s")
    print(f"recsuite CausalLM(None) (dequantised copy, hashes checked) load {mine['load']:6.2f} s")
    print(f"transformers from_pretrained(gguf_file=...)                  load {peer['load']:6.2f} s")
    verdict = "met" if mine["load"] <= TARGET_S else "not met"
    print(f"  load speed ratio (GGUF / copy): {peer['load'] / mine['load']:.1f}x; "
          f"load {mine['load']:.2f} s against the target <= {TARGET_S:g} s: {verdict}")


if __name__ == "__main__":
    main()
