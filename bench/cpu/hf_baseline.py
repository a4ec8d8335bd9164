#!/usr/bin/env python3
"""transformers (torch CPU) on the same model dir, prompt and thread count as
bench_cpu: prefill tokens/s (one forward over the prompt) and decode tokens/s
(greedy generate with the KV cache, no stop), best of --runs. Prints one JSON
object per dtype. Needs torch + transformers (not in CI: run by hand / run.sh)."""
import argparse
import json
import time

import torch
from transformers import AutoModelForCausalLM


def prompt_ids(n):
    # the same pseudo-random prompt as bench_cpu.c
    ids, s = [2], 12345
    for _ in range(1, n):
        s = (s * 1103515245 + 12345) & 0xFFFFFFFF
        ids.append(1000 + ((s >> 8) % 100000))
    return ids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--dtypes", default="float32,bfloat16")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ids = torch.tensor([prompt_ids(a.prompt)])
    for name in a.dtypes.split(","):
        dtype = getattr(torch, name)
        model = AutoModelForCausalLM.from_pretrained(a.model_dir, dtype=dtype, attn_implementation="sdpa")
        model.eval()
        best_prefill = best_decode = float("inf")
        with torch.inference_mode():
            for _ in range(a.runs):
                t0 = time.perf_counter()
                model(ids, use_cache=True, logits_to_keep=1)
                best_prefill = min(best_prefill, time.perf_counter() - t0)
                # decode: the same greedy loop over the KV cache that generate() runs, timed alone
                out = model(ids, use_cache=True, logits_to_keep=1)
                cache, tok = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
                t0 = time.perf_counter()
                for _ in range(a.decode - 1):
                    out = model(tok, past_key_values=cache, use_cache=True)
                    cache, tok = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
                best_decode = min(best_decode, time.perf_counter() - t0)
        print(json.dumps({"engine": f"transformers-{name}", "prompt_tokens": a.prompt, "decode_tokens": a.decode,
                          "threads": a.threads, "prefill_tok_s": round(a.prompt / best_prefill, 2),
                          "decode_tok_s": round((a.decode - 1) / best_decode, 2)}), flush=True)
        del model


if __name__ == "__main__":
    main()
