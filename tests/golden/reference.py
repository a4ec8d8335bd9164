"""A numpy (float64) reference of what transformers computes for Gemma 3 / MedGemma, written top to
bottom for reading. It reproduces the committed goldens (tests/golden/test_goldens.py checks that),
so every rule in tests/golden/README.md is executable here.

Owner: tests/golden. numpy only (runs in CI); small models only (no attempt at speed).
"""
import json
import math
import os

import numpy as np

# ---------------------------------------------------------------- safetensors + model dir loading

_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32, "U8": np.uint8}


def load_safetensors(path):
    """name -> numpy array (BF16 widened to float32 exactly)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        raw = data[a:b]
        if t["dtype"] == "BF16":
            bits = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            arr = bits.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=_DTYPES[t["dtype"]])
        out[name] = arr.reshape(t["shape"])
    return out


def safetensors_dtypes(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    return {k: v["dtype"] for k, v in header.items() if k != "__metadata__"}


def weight_files(model_dir):
    idx = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            return sorted(set(json.load(f)["weight_map"].values()))
    return ["model.safetensors"]


# Checkpoint prefixes (MODEL.md's two layouts + the text-only one) -> short canonical prefixes.
_PREFIXES = [
    ("model.language_model.", "lm."), ("language_model.model.", "lm."),
    ("model.vision_tower.vision_model.", "vt."), ("vision_tower.vision_model.", "vt."),
    ("model.multi_modal_projector.", "mmp."), ("multi_modal_projector.", "mmp."),
    ("model.", "lm."),  # Gemma3ForCausalLM: model.layers.*, model.embed_tokens, model.norm
]


def canonical(name):
    if name == "lm_head.weight":
        return "lm_head.weight"
    for old, new in _PREFIXES:
        if name.startswith(old):
            return new + name[len(old):]
    raise ValueError("unknown checkpoint key " + name)


def load_model_dir(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    w = {}
    for fn in weight_files(model_dir):
        for k, v in load_safetensors(os.path.join(model_dir, fn)).items():
            w[canonical(k)] = v.astype(np.float64)
    return cfg, w


# ---------------------------------------------------------------- config, with transformers' defaults

def text_params(cfg):
    tc = cfg.get("text_config", cfg)
    p = {
        "hidden": tc.get("hidden_size", 2304),
        "layers": tc.get("num_hidden_layers", 26),
        "heads": tc.get("num_attention_heads", 8),
        "kv_heads": tc.get("num_key_value_heads", 4),
        "head_dim": tc.get("head_dim", 256),
        "qpas": tc.get("query_pre_attn_scalar", 256),
        "eps": tc.get("rms_norm_eps", 1e-6),
        "window": tc.get("sliding_window", 4096),
        "vocab": tc.get("vocab_size", 262208),
    }
    pattern = tc.get("sliding_window_pattern", tc.get("_sliding_window_pattern", 6))
    p["layer_types"] = tc.get("layer_types") or [
        "full_attention" if (i + 1) % pattern == 0 else "sliding_attention" for i in range(p["layers"])]
    if "rope_parameters" in tc and tc["rope_parameters"]:
        rp = tc["rope_parameters"]
        p["rope"] = {"full_attention": dict(rp["full_attention"]), "sliding_attention": dict(rp["sliding_attention"])}
    else:  # transformers <= 4.5x form
        full = {"rope_type": "default", "rope_theta": tc.get("rope_theta", 1e6)}
        if tc.get("rope_scaling"):
            full.update(tc["rope_scaling"])
            full["rope_type"] = full.get("rope_type", full.get("type"))
        p["rope"] = {"full_attention": full,
                     "sliding_attention": {"rope_type": "default", "rope_theta": tc.get("rope_local_base_freq", 1e4)}}
    return p


# ---------------------------------------------------------------- ops

def rmsnorm(x, w, eps):
    """Gemma RMSNorm: x / sqrt(mean(x^2) + eps) * (1 + w) (weights stored as scale - 1)."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * (1.0 + w)


def layernorm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def softmax(x):
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


def inv_freq(rope, head_dim):
    f = 1.0 / (rope["rope_theta"] ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    if rope.get("rope_type", "default") == "linear":
        f = f / rope["factor"]
    elif rope.get("rope_type", "default") != "default":
        raise ValueError("rope type %r not in this reference" % rope["rope_type"])
    return f


def apply_rope(x, pos, freqs):
    """x [T, heads, d]: rotate-half RoPE (pairs i and i + d/2)."""
    ang = pos[:, None] * freqs[None, :]                      # [T, d/2]
    cos = np.concatenate([np.cos(ang), np.cos(ang)], -1)[:, None, :]
    sin = np.concatenate([np.sin(ang), np.sin(ang)], -1)[:, None, :]
    half = x.shape[-1] // 2
    rot = np.concatenate([-x[..., half:], x[..., :half]], -1)
    return x * cos + rot * sin


def image_blocks(token_type_ids):
    """block[i] = index of the run of consecutive image tokens holding i, -1 for other tokens."""
    block = np.full(len(token_type_ids), -1)
    b = -1
    for i, t in enumerate(token_type_ids):
        if t == 1 and (i == 0 or token_type_ids[i - 1] != 1):
            b += 1
        if t == 1:
            block[i] = b
    return block


def attention_mask(token_type_ids, layer_type, window):
    """True = query row may attend key column (prefill of the whole sequence)."""
    block = image_blocks(token_type_ids)
    T = len(block)
    q = np.arange(T)[:, None]
    k = np.arange(T)[None, :]
    same = (block[:, None] == block[None, :]) & (block[:, None] >= 0)
    allowed = (k <= q) | same
    if layer_type == "sliding_attention":
        allowed &= k > q - window
    return allowed


# ---------------------------------------------------------------- vision tower + projector

def vision_tower(cfg, w, pixels):
    """pixels [3, S, S] -> (hidden states list [Lv+1] of [P, Hv], post-LN output [P, Hv])."""
    vc = cfg["vision_config"]
    ps, S, Hv = vc["patch_size"], vc["image_size"], vc["hidden_size"]
    G = S // ps
    nh = vc["num_attention_heads"]
    hd = Hv // nh
    eps = vc.get("layer_norm_eps", 1e-6)
    # patch p = row * G + col; vector index c * ps*ps + ky * ps + kx
    patches = pixels.reshape(3, G, ps, G, ps).transpose(1, 3, 0, 2, 4).reshape(G * G, 3 * ps * ps)
    W = w["vt.embeddings.patch_embedding.weight"].reshape(Hv, -1)
    x = patches @ W.T + w["vt.embeddings.patch_embedding.bias"] + w["vt.embeddings.position_embedding.weight"]
    states = [x]
    for i in range(vc["num_hidden_layers"]):
        p = "vt.encoder.layers.%d." % i
        h = layernorm(x, w[p + "layer_norm1.weight"], w[p + "layer_norm1.bias"], eps)
        q, k, v = ((h @ w[p + "self_attn.%s_proj.weight" % n].T + w[p + "self_attn.%s_proj.bias" % n])
                   .reshape(-1, nh, hd) for n in "qkv")
        att = softmax(np.einsum("qhd,khd->hqk", q, k) * hd ** -0.5)          # no mask
        o = np.einsum("hqk,khd->qhd", att, v).reshape(-1, Hv)
        x = x + o @ w[p + "self_attn.out_proj.weight"].T + w[p + "self_attn.out_proj.bias"]
        h = layernorm(x, w[p + "layer_norm2.weight"], w[p + "layer_norm2.bias"], eps)
        h = gelu_tanh(h @ w[p + "mlp.fc1.weight"].T + w[p + "mlp.fc1.bias"])
        x = x + h @ w[p + "mlp.fc2.weight"].T + w[p + "mlp.fc2.bias"]
        states.append(x)
    out = layernorm(x, w["vt.post_layernorm.weight"], w["vt.post_layernorm.bias"], eps)
    return states, out


def projector(cfg, w, vis):
    """[P, Hv] (a G x G grid) -> average pool to sqrt(mm) x sqrt(mm) -> RMSNorm(1+w) -> @ W [Hv, H]."""
    vc = cfg["vision_config"]
    G = vc["image_size"] // vc["patch_size"]
    side = int(round(cfg.get("mm_tokens_per_image", 256) ** 0.5))
    k = G // side
    Hv = vis.shape[-1]
    pooled = vis.reshape(side, k, side, k, Hv).mean(axis=(1, 3)).reshape(side * side, Hv)
    normed = rmsnorm(pooled, w["mmp.mm_soft_emb_norm.weight"], vc.get("layer_norm_eps", 1e-6))
    return normed @ w["mmp.mm_input_projection_weight"]


# ---------------------------------------------------------------- text decoder

def forward(cfg, w, input_ids, token_type_ids=None, image_features=None, embed_scale=None):
    """Whole-sequence forward. Returns (logits [T, V], hidden_states [L+1, T, H], last layer output).

    hidden_states follow transformers' output_hidden_states: [0] = decoder input, [i] = after layer
    i-1, [L] = final norm output. image_features: [n, mm, H] placed on the image-token rows in order.
    """
    p = text_params(cfg)
    H, nh, nkv, hd = p["hidden"], p["heads"], p["kv_heads"], p["head_dim"]
    ids = np.asarray(input_ids)
    T = len(ids)
    tt = np.zeros(T, dtype=np.int64) if token_type_ids is None else np.asarray(token_type_ids)
    E = w["lm.embed_tokens.weight"]
    scale = math.sqrt(H) if embed_scale is None else embed_scale
    x = E[ids] * scale
    if image_features is not None and len(image_features):
        img_id = cfg.get("image_token_index", 262144)
        rows = np.where(ids == img_id)[0]
        x[rows] = np.asarray(image_features, dtype=np.float64).reshape(-1, H)
    pos = np.arange(T, dtype=np.float64)
    freqs = {lt: inv_freq(r, hd) for lt, r in p["rope"].items()}
    masks = {lt: attention_mask(tt, lt, p["window"]) for lt in set(p["layer_types"])}
    states = [x]
    for i in range(p["layers"]):
        lt = p["layer_types"][i]
        pre = "lm.layers.%d." % i
        h = rmsnorm(x, w[pre + "input_layernorm.weight"], p["eps"])
        q = (h @ w[pre + "self_attn.q_proj.weight"].T).reshape(T, nh, hd)
        k = (h @ w[pre + "self_attn.k_proj.weight"].T).reshape(T, nkv, hd)
        v = (h @ w[pre + "self_attn.v_proj.weight"].T).reshape(T, nkv, hd)
        q = apply_rope(rmsnorm(q, w[pre + "self_attn.q_norm.weight"], p["eps"]), pos, freqs[lt])
        k = apply_rope(rmsnorm(k, w[pre + "self_attn.k_norm.weight"], p["eps"]), pos, freqs[lt])
        k = np.repeat(k, nh // nkv, axis=1)  # query head j uses KV head j // (nh / nkv)
        v = np.repeat(v, nh // nkv, axis=1)
        scores = np.einsum("qhd,khd->hqk", q, k) * p["qpas"] ** -0.5
        scores = np.where(masks[lt][None], scores, -np.inf)
        o = np.einsum("hqk,khd->qhd", softmax(scores), v).reshape(T, nh * hd)
        o = o @ w[pre + "self_attn.o_proj.weight"].T
        x = x + rmsnorm(o, w[pre + "post_attention_layernorm.weight"], p["eps"])
        h = rmsnorm(x, w[pre + "pre_feedforward_layernorm.weight"], p["eps"])
        h = gelu_tanh(h @ w[pre + "mlp.gate_proj.weight"].T) * (h @ w[pre + "mlp.up_proj.weight"].T)
        h = h @ w[pre + "mlp.down_proj.weight"].T
        x = x + rmsnorm(h, w[pre + "post_feedforward_layernorm.weight"], p["eps"])
        states.append(x)
    last = x
    final = rmsnorm(x, w["lm.norm.weight"], p["eps"])
    states[-1] = final
    return final @ E.T, np.stack(states), last


def greedy(cfg, w, input_ids, token_type_ids, image_features, n):
    """n greedy tokens by full recomputation (decode rows are text: plain causal/window mask)."""
    ids = list(input_ids)
    tt = list(token_type_ids)
    out, step_logits = [], []
    for _ in range(n):
        logits, _, _ = forward(cfg, w, ids, tt, image_features)
        nxt = int(np.argmax(logits[-1]))
        out.append(nxt)
        step_logits.append(logits[-1])
        ids.append(nxt)
        tt.append(0)
    return out, np.stack(step_logits)
