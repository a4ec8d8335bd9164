#!/usr/bin/env python3
"""Checks tests/fixtures/gemma3-270m/expected.json against the vendored tokenizer and, when
`make models` has made it, the converted Gemma 3 270M dir it was computed from.

Owner: tests/golden. numpy + tokenizers only. Run by tests/run.sh ("ok/FAIL/skip NAME" lines).
The engine's own comparison (its greedy ids == these) lives with the engine's tests.
"""
import json
import lzma
import os
import sys

REPO = os.environ.get("REPO_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.environ.get("MEDGEMMA_CACHE") or os.path.expanduser("~/.cache/medgemma-engine")
MODEL = os.path.join(CACHE, "gemma3-270m")
failures = 0


def check(name, cond, why):
    global failures
    if cond:
        print("ok " + name)
    else:
        failures += 1
        print("FAIL %s: %s" % (name, why))


def header(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        if n <= 0 or n > 100 << 20:
            raise ValueError("bad header length %d in %s" % (n, path))
        h = json.loads(f.read(n))
    h.pop("__metadata__", None)
    return h


def main():
    exp = json.load(open(os.path.join(REPO, "tests", "fixtures", "gemma3-270m", "expected.json")))
    prompts = exp["prompts"]
    ok = len(prompts) >= 6 and all(
        p["input_ids"][0] == 2 and p["input_ids"].count(2) == 1 and 0 < len(p["greedy_ids"]) <= exp["max_new_tokens"]
        and (len(p["greedy_ids"]) == exp["max_new_tokens"] or p["greedy_ids"][-1] in exp["stop_ids"])
        and len(p["top5_ids_last_prompt_pos"]) == 5 and p["top5_ids_last_prompt_pos"][0] == p["greedy_ids"][0]
        for p in prompts)
    check("gemma3_270m_expected_format", ok, "expected.json breaks the format of tests/golden/README.md")
    check("gemma3_270m_expected_long_prompt", any(len(p["input_ids"]) > exp["sliding_window"] for p in prompts),
          "no prompt is longer than the sliding window")

    try:
        from tokenizers import Tokenizer
    except ImportError:
        print("skip gemma3_270m_tokenization: python package tokenizers is not installed (make deps)")
    else:
        with lzma.open(os.path.join(REPO, "assets", "gemma3-tokenizer", "tokenizer.json.xz")) as f:
            tok = Tokenizer.from_str(f.read().decode("utf-8"))
        for p in prompts:
            with_bos = not p["prompt"].startswith("<bos>")
            ids = tok.encode(p["prompt"], add_special_tokens=with_bos).ids
            check("gemma3_270m_tokenize_%s" % p["name"], ids == p["input_ids"],
                  "tokenizers gives %s..., expected.json %s..." % (ids[:8], p["input_ids"][:8]))
            text = tok.decode(p["greedy_ids"], skip_special_tokens=False)
            check("gemma3_270m_decode_%s" % p["name"], text == p["greedy_text"],
                  "decoded %r != %r" % (text[:60], p["greedy_text"][:60]))

    stamp_path = os.path.join(MODEL, ".complete")
    if not os.path.exists(stamp_path):
        print("skip gemma3_270m_converted_dir: %s is not there; run `make models`" % MODEL)
        return 1 if failures else 0
    stamp = json.load(open(stamp_path))
    check("gemma3_270m_same_weights", stamp.get("model_sha256") == exp["model_sha256"],
          "the converted model (sha256 %s) is not the one expected.json was made from (%s): rerun "
          "tests/golden/make_270m_expected.py or fix gguf_to_hf.py" % (stamp.get("model_sha256"), exp["model_sha256"]))
    cfg = json.load(open(os.path.join(MODEL, "config.json")))
    want = {"hidden_size": 640, "num_hidden_layers": 18, "intermediate_size": 2048, "num_attention_heads": 4,
            "num_key_value_heads": 1, "head_dim": 256, "query_pre_attn_scalar": 256, "sliding_window": 512,
            "vocab_size": 262144, "architectures": ["Gemma3ForCausalLM"]}
    bad = {k: cfg.get(k) for k, v in want.items() if cfg.get(k) != v}
    check("gemma3_270m_config", not bad, "unexpected config values %s" % bad)
    types = cfg.get("layer_types", [])
    check("gemma3_270m_layer_types", [i for i, t in enumerate(types) if t == "full_attention"] == [5, 11, 17]
          and len(types) == 18, "layer_types %s" % types)
    h = header(os.path.join(MODEL, "model.safetensors"))
    H, I, hd = 640, 2048, 256
    shapes = {"model.embed_tokens.weight": [262144, H], "model.norm.weight": [H]}
    for i in range(18):
        pre = "model.layers.%d." % i
        shapes.update({pre + "self_attn.q_proj.weight": [4 * hd, H], pre + "self_attn.k_proj.weight": [hd, H],
                       pre + "self_attn.v_proj.weight": [hd, H], pre + "self_attn.o_proj.weight": [H, 4 * hd],
                       pre + "self_attn.q_norm.weight": [hd], pre + "self_attn.k_norm.weight": [hd],
                       pre + "mlp.gate_proj.weight": [I, H], pre + "mlp.up_proj.weight": [I, H],
                       pre + "mlp.down_proj.weight": [H, I]})
        for n in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                  "post_feedforward_layernorm"):
            shapes[pre + n + ".weight"] = [H]
    got = {k: v["shape"] for k, v in h.items()}
    check("gemma3_270m_tensors", got == shapes and {v["dtype"] for v in h.values()} == {"BF16"},
          "tensor names/shapes/dtypes differ: missing %s, extra %s"
          % (sorted(set(shapes) - set(got))[:3], sorted(set(got) - set(shapes))[:3]))
    for f in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        check("gemma3_270m_file_" + f, os.path.getsize(os.path.join(MODEL, f)) > 0, f + " missing or empty")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
