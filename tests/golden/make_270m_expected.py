#!/usr/bin/env python3
"""Writes tests/fixtures/gemma3-270m/expected.json: transformers' greedy continuations of the real
Gemma 3 270M (the dir made by tests/golden/prepare_270m.sh), for the engine to reproduce.

Owner: tests/golden. Needs torch + transformers (not in CI; the output is committed).
    bash tests/golden/prepare_270m.sh && python3 tests/golden/make_270m_expected.py [MODEL_DIR]
Format: tests/golden/README.md.
"""
import json
import os
import re
import sys

import numpy as np
import torch
from safetensors.numpy import save_file
import transformers
from transformers import AutoTokenizer, Gemma3ForCausalLM, GenerationConfig

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(REPO, "tests", "fixtures", "gemma3-270m", "expected.json")
N_NEW = 32
STOP_IDS = [1, 106]


def long_prompt(tok, min_tokens):
    """A counting prompt longer than the 512-token sliding window."""
    text, n = "Counting from one upward: 1", 1
    while len(tok(text).input_ids) < min_tokens:
        n += 1
        text += ", %d" % n
    return text + ","


def main():
    cache = os.environ.get("MEDGEMMA_CACHE", os.path.expanduser("~/.cache/medgemma-engine"))
    model_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(cache, "gemma3-270m")
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model, info = Gemma3ForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                                    attn_implementation="eager", output_loading_info=True)
    for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        assert not info[k], (k, info[k])
    model.eval()
    window = model.config.sliding_window

    chat_text = tok.apply_chat_template([{"role": "user", "content": "What is the largest planet in the solar system?"}],
                                        tokenize=False, add_generation_prompt=True)
    prompts = [
        ("capital_france", "The capital of France is", True),
        ("water_boils", "Water boils at a temperature of", True),
        ("primary_colors", "The three primary colors are", True),
        ("story", "Once upon a time, in a small village by the sea, there lived", True),
        ("code", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n", True),
        ("chat_template", chat_text, False),  # the template already starts with <bos>
        ("long_counting", long_prompt(tok, window + 40), True),
    ]
    gcfg = GenerationConfig(do_sample=False, max_new_tokens=N_NEW, eos_token_id=STOP_IDS, pad_token_id=0,
                            bos_token_id=2, output_logits=True, return_dict_in_generate=True)
    records = []
    for name, text, add_special in prompts:
        ids = tok(text, add_special_tokens=add_special).input_ids
        assert ids[0] == 2 and ids.count(2) == 1, (name, ids[:4])
        inp = torch.tensor([ids])
        with torch.no_grad():
            out = model(input_ids=inp)
            last = out.logits[0, -1].float()
            g = model.generate(input_ids=inp, attention_mask=torch.ones_like(inp), generation_config=gcfg)
        new = g.sequences[0, len(ids):].tolist()
        steps = torch.stack([x[0].float() for x in g.logits])
        assert steps.argmax(-1).tolist() == new
        assert torch.allclose(steps[0], last, rtol=0, atol=1e-3)
        top2 = steps.topk(2, dim=-1)
        margins = (top2.values[:, 0] - top2.values[:, 1]).tolist()
        top5 = last.topk(5)
        stopped = bool(new) and new[-1] in STOP_IDS
        rec = {
            "name": name,
            "prompt": text,
            "input_ids": ids,
            "n_prompt_tokens": len(ids),
            "greedy_ids": new,
            "greedy_text": tok.decode(new, skip_special_tokens=False),
            "stop_reason": "stop_token" if stopped else "length",
            "top5_ids_last_prompt_pos": top5.indices.tolist(),
            "top5_logits_last_prompt_pos": [round(v, 4) for v in top5.values.tolist()],
            "greedy_top1_logits": [round(v, 4) for v in top2.values[:, 0].tolist()],
            "min_top1_margin": round(min(margins), 5),
            "min_top1_margin_step": int(min(range(len(margins)), key=lambda i: margins[i])),
        }
        records.append(rec)
        if name == "capital_france":  # per-layer states of one real prompt, for debugging an engine
            with torch.no_grad():
                hs = model(input_ids=inp, output_hidden_states=True).hidden_states
            hidden = torch.stack([h[0] for h in hs]).float().numpy()
            save_file({"input_ids": np.array(ids, dtype=np.int64), "hidden_states": hidden,
                       "last_logits_top5_ids": top5.indices.numpy().astype(np.int64)},
                      os.path.join(os.path.dirname(OUT), "capital_france_hidden.safetensors"),
                      metadata={"golden": "gemma3-270m capital_france; transformers float32"})
        print("%-15s %4d tokens -> %r (min margin %.4f at step %d, %s)"
              % (name, len(ids), rec["greedy_text"], rec["min_top1_margin"], rec["min_top1_margin_step"],
                 rec["stop_reason"]))

    # transformers in fp32 multiplies embeddings by sqrt(640) = 25.2982 (fp32); with bf16 weights it would
    # use 25.25. Record whether the greedy continuations depend on it (an engine may use either).
    emb = model.model.embed_tokens
    scale_fp32 = float(emb.embed_scale)
    emb.embed_scale.fill_(float(torch.tensor(scale_fp32).to(torch.bfloat16)))
    for (name, text, add_special), rec in zip(prompts, records):
        inp = torch.tensor([rec["input_ids"]])
        with torch.no_grad():
            g = model.generate(input_ids=inp, attention_mask=torch.ones_like(inp), generation_config=gcfg)
        alt = g.sequences[0, inp.shape[1]:].tolist()
        rec["same_greedy_with_bf16_embed_scale"] = alt == rec["greedy_ids"]
        if alt != rec["greedy_ids"]:
            rec["greedy_ids_with_bf16_embed_scale"] = alt
            print("NOTE: %s differs with the bf16-rounded embedding scale" % name)

    stamp = {}
    stamp_path = os.path.join(model_dir, ".complete")
    if os.path.exists(stamp_path):
        stamp = json.load(open(stamp_path))
    doc = {
        "about": "Greedy continuations of the Gemma 3 270M converted by tests/golden/gguf_to_hf.py, "
                 "computed by transformers in float32 (eager attention, CPU). Format: tests/golden/README.md.",
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__.split("+")[0],
        "model_dir": "$MEDGEMMA_CACHE/gemma3-270m",
        "gguf_sha256": stamp.get("gguf_sha256"),
        "converter_sha256": stamp.get("converter_sha256"),
        "model_sha256": stamp.get("model_sha256"),
        "max_new_tokens": N_NEW,
        "stop_ids": STOP_IDS,
        "sliding_window": window,
        "embed_scale_used": scale_fp32,
        "embed_scale_bf16": float(emb.embed_scale),
        "prompts": records,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    text = json.dumps(doc, indent=1, ensure_ascii=False)
    # Keep number lists on one line.
    text = re.sub(r"\[\s*([-0-9.,\s]+?)\s*\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
    assert json.loads(text) == doc
    with open(OUT, "w") as f:
        f.write(text + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
